"""The repository snapshot an agent works on: the task's files plus the agent's changes.

Nothing touches a disk: the snapshot is the request's `files` map, and what the agent
writes or deletes is kept apart from it, so the run's output is exactly its changes.
"""

from __future__ import annotations

import posixpath
from pathlib import PurePosixPath

import msgspec

from contracts.repos import path_problem

MAX_FILE_BYTES = 2 * 1024 * 1024


def printable(text: str) -> str:
    """`text` without U+0000, which PostgreSQL cannot store in text or jsonb: anything a model
    wrote passes through here before it can reach an event."""
    return text.replace("\x00", "\ufffd")


class PathError(ValueError):
    """A path an agent may not use: absolute, escaping the repository, or empty."""


def normalize(path: str) -> str:
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise PathError("a file path must be a non-empty string")
    clean = posixpath.normpath(path.strip().replace("\\", "/"))
    if clean.startswith("/") or clean == ".." or clean.startswith("../") or clean == ".":
        raise PathError(f"'{path}' is outside the repository: use a relative path such as src/app.py")
    # The rest of what a submitted path may not be (inside `.git`, say): an agent's file is
    # proposed in a pull request and written to disk by self-heal like the task's own.
    if (problem := path_problem(clean)) is not None:
        raise PathError(problem)
    return clean


class Changes(msgspec.Struct, frozen=True):
    files: dict[str, str]
    deleted: list[str]


class Repository:
    def __init__(self, files: dict[str, str]) -> None:
        self.base = dict(files)
        self.written: dict[str, str] = {}
        self.deleted: set[str] = set()

    def paths(self) -> list[str]:
        return sorted((set(self.base) - self.deleted) | set(self.written))

    def read(self, path: str) -> str | None:
        path = normalize(path)
        if path in self.written:
            return self.written[path]
        if path in self.deleted:
            return None
        return self.base.get(path)

    def write(self, path: str, content: str) -> str:
        path = normalize(path)
        content = printable(content)
        if len(content.encode()) > MAX_FILE_BYTES:
            raise PathError(f"'{path}' would be larger than {MAX_FILE_BYTES} bytes")
        existing = self.paths()
        for parent in PurePosixPath(path).parents:
            if str(parent) in existing:
                raise PathError(f"'{parent}' is a file, so '{path}' cannot be created under it")
        if any(p.startswith(path + "/") for p in existing):
            raise PathError(f"'{path}' is a folder")
        self.written[path] = content
        self.deleted.discard(path)
        return path

    def delete(self, path: str) -> str:
        path = normalize(path)
        if self.read(path) is None:
            raise PathError(f"'{path}' does not exist")
        self.written.pop(path, None)
        if path in self.base:
            self.deleted.add(path)
        return path

    def current(self) -> dict[str, str]:
        """Every file as the agent left the repository."""
        files = {p: c for p, c in self.base.items() if p not in self.deleted}
        files.update(self.written)
        return files

    def changes(self) -> Changes:
        """What the agent changed: files written with a new content, and base files deleted."""
        files = {p: c for p, c in self.written.items() if self.base.get(p) != c}
        return Changes(files=dict(sorted(files.items())), deleted=sorted(self.deleted))
