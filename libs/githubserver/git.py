"""Git objects as GitHub keeps them: blobs, trees and commits, each addressed by its real SHA-1.

A tree is kept flat (file path -> entry) because the REST endpoints address files by path, but it
is hashed as git nests it, one tree object per directory, so every sha is the one `git` computes
for the same content. Every directory's tree is registered too, so `GET git/trees/{sha}` and
`base_tree` work for a subtree as they do on GitHub.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime

FILE_MODE = "100644"
DIRECTORY_MODE = "040000"
# Symlinks and executables are blobs too; submodules (160000) are not modelled.
BLOB_MODES = frozenset({"100644", "100755", "120000"})


@dataclass(frozen=True)
class Entry:
    """A file in a tree: its mode and its blob."""

    mode: str
    sha: str


@dataclass(frozen=True)
class Listed:
    """One entry of a tree object as the API lists it: a file, or a directory's tree."""

    path: str
    mode: str
    type: str
    sha: str


@dataclass(frozen=True)
class Tree:
    files: Mapping[str, Entry]
    listing: tuple[Listed, ...]


@dataclass(frozen=True)
class Signature:
    name: str
    email: str
    date: datetime

    def line(self) -> str:
        offset = self.date.strftime("%z") or "+0000"
        return f"{self.name} <{self.email}> {int(self.date.timestamp())} {offset}"


@dataclass(frozen=True)
class Commit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author: Signature
    committer: Signature


def object_sha(kind: str, body: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(body)}\0".encode() + body, usedforsecurity=False).hexdigest()


def _tree_order(item: Listed) -> bytes:
    # git sorts a directory as if its name ended with "/".
    name = item.path.encode()
    return name + b"/" if item.type == "tree" else name


class ObjectStore:
    """The blobs, trees and commits of one repository."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, Tree] = {}
        self.commits: dict[str, Commit] = {}

    def add_blob(self, content: bytes) -> str:
        sha = object_sha("blob", content)
        self.blobs[sha] = content
        return sha

    def add_tree(self, files: Mapping[str, Entry]) -> str:
        direct: dict[str, Entry] = {}
        directories: dict[str, dict[str, Entry]] = {}
        for path, entry in files.items():
            head, slash, rest = path.partition("/")
            if slash:
                directories.setdefault(head, {})[rest] = entry
            else:
                direct[head] = entry
        listing = [Listed(name, entry.mode, "blob", entry.sha) for name, entry in direct.items()]
        listing += [Listed(name, DIRECTORY_MODE, "tree", self.add_tree(sub)) for name, sub in directories.items()]
        listing.sort(key=_tree_order)
        # git writes a directory's mode without the leading zero the API shows.
        body = b"".join(f"{item.mode.lstrip('0')} {item.path}\0".encode() + bytes.fromhex(item.sha) for item in listing)
        sha = object_sha("tree", body)
        self.trees[sha] = Tree(files=dict(files), listing=tuple(listing))
        return sha

    def add_commit(
        self, tree: str, parents: tuple[str, ...], message: str, author: Signature, committer: Signature
    ) -> Commit:
        headers = [f"tree {tree}", *(f"parent {parent}" for parent in parents)]
        headers += [f"author {author.line()}", f"committer {committer.line()}"]
        body = "\n".join(headers) + "\n\n" + message
        commit = Commit(object_sha("commit", body.encode()), tree, parents, message, author, committer)
        self.commits[commit.sha] = commit
        return commit

    def walk(self, tree_sha: str, prefix: str = "") -> Iterator[Listed]:
        """Every entry under a tree, directories before their contents (`?recursive=1`)."""
        for item in self.trees[tree_sha].listing:
            path = f"{prefix}{item.path}"
            yield Listed(path, item.mode, item.type, item.sha)
            if item.type == "tree":
                yield from self.walk(item.sha, f"{path}/")

    def ancestors(self, sha: str) -> Iterator[str]:
        """The commit and everything it descends from, nearest first."""
        seen: set[str] = set()
        queue = [sha]
        while queue:
            current = queue.pop(0)
            if current in seen or current not in self.commits:
                continue
            seen.add(current)
            yield current
            queue.extend(self.commits[current].parents)

    def text(self, sha: str) -> str:
        return self.blobs[sha].decode("utf-8", errors="replace")
