"""The GitHub calls a pull request is made of, the git-data way: read a branch (its head commit
and tree), write a tree and one commit on it, create a branch, find or open a pull request.

Only the fields read here are decoded, with msgspec: githubkit's `parsed_data` builds a pydantic
model of the whole answer (and, for lists, a new TypeAdapter each call), which cost more CPU than
the request itself.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import msgspec
from githubkit import GitHub, Response
from githubkit.exception import RequestFailed

from services.executor.github.errors import UnexpectedAnswer, github_message

FILE_MODE = "100644"


class Target(NamedTuple):
    owner: str
    repo: str
    branch: str
    base: str

    @property
    def path(self) -> tuple[str, str]:
        """The owner and the repository as path segments of a GitHub call: githubkit puts path
        parameters into the URL as they are, so each is escaped here, and no name (checked at
        submission, and again before publishing) can reach another path with our credentials."""
        return segment(self.owner), segment(self.repo)


def segment(name: str) -> str:
    """`name` as one path segment: every reserved character escaped, and a name of dots alone
    too (a URL's `.` and `..` segments are resolved before the request is sent)."""
    escaped = quote(name, safe="")
    return escaped.replace(".", "%2E") if set(name) <= {"."} else escaped


def segments(path: str) -> str:
    """A `/`-separated name (a branch, a ref) as path segments, each escaped on its own."""
    return "/".join(segment(part) for part in path.split("/"))


def branch_ref(branch: str) -> str:
    # githubkit puts path parameters into the URL as they are; GitHub wants a ref's slashes as
    # they are, so each part is escaped on its own.
    return segments(f"heads/{branch}")


class Opened(NamedTuple):
    url: str
    number: int
    body: str


class _Sha(msgspec.Struct):
    sha: str


class _Commit(msgspec.Struct):
    tree: _Sha
    message: str = ""


class _BranchHead(msgspec.Struct):
    sha: str
    commit: _Commit


class _Branch(msgspec.Struct):
    commit: _BranchHead


class _Pull(msgspec.Struct):
    html_url: str
    number: int
    body: str | None = None


T = TypeVar("T")


def _read(response: Response[Any], shape: type[T]) -> T:
    try:
        return msgspec.json.decode(response.content, type=shape)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UnexpectedAnswer(f"{response.raw_request.method} {response.raw_request.url.path}: {exc}") from None


async def find_open(github: GitHub[Any], target: Target) -> Opened | None:
    # `head` must carry its owner: GitHub silently ignores a bare branch name here.
    response = await github.rest.pulls.async_list(*target.path, head=f"{target.owner}:{target.branch}", state="open")
    found = _read(response, list[_Pull])
    return Opened(found[0].html_url, found[0].number, found[0].body or "") if found else None


async def branch_head(github: GitHub[Any], target: Target, branch: str) -> _BranchHead:
    """The branch's head commit, with its tree and message, in one call (a ref, then its commit,
    would be two)."""
    found = await github.rest.repos.async_get_branch(*target.path, segments(branch))
    return _read(found, _Branch).commit


async def commit_changes(
    github: GitHub[Any],
    target: Target,
    files: dict[str, str],
    removed: list[str],
    message: str,
    onto: str | _BranchHead,
) -> str:
    """One commit of the changes on top of branch `onto` (or of that branch's head, read
    already); its sha."""
    owner, repo = target.path
    head = await branch_head(github, target, onto) if isinstance(onto, str) else onto
    base, base_tree = head.sha, head.commit.tree.sha
    # Contents go inline (GitHub writes the blobs): one request, where a blob per file would
    # count against GitHub's limit on content-creating requests.
    entries: list[dict[str, Any]] = [
        {"path": path, "mode": FILE_MODE, "type": "blob", "content": content} for path, content in sorted(files.items())
    ]
    entries += [{"path": path, "mode": FILE_MODE, "type": "blob", "sha": None} for path in removed]
    tree = _read(await github.rest.git.async_create_tree(owner, repo, base_tree=base_tree, tree=entries), _Sha).sha
    commit = await github.rest.git.async_create_commit(owner, repo, message=message, tree=tree, parents=[base])
    return _read(commit, _Sha).sha


async def create_branch(github: GitHub[Any], target: Target, commit: str) -> bool:
    """Creates the task's branch at `commit`; False when it exists already."""
    try:
        await github.rest.git.async_create_ref(*target.path, ref=f"refs/heads/{target.branch}", sha=commit)
    except RequestFailed as exc:
        if exc.response.status_code == 422 and "already exists" in github_message(exc):
            return False
        raise
    return True


async def create(github: GitHub[Any], target: Target, title: str, body: str) -> Opened:
    try:
        response = await github.rest.pulls.async_create(
            *target.path, title=title, head=target.branch, base=target.base, body=body
        )
    except RequestFailed as exc:
        # Another replica handling the same approval may have opened it a moment ago.
        if exc.response.status_code == 422 and (opened := await find_open(github, target)) is not None:
            return opened
        raise
    pull = _read(response, _Pull)
    return Opened(pull.html_url, pull.number, pull.body or "")
