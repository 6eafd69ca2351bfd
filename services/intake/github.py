"""What the intake asks of GitHub, as the App's installation (githubkit mints and renews the
installation's token from the App's JWT): a commenter's permission, a repository's files at its
default branch, and comments on an issue. GitHub away or limiting is `TryLater`: the event comes
back, and nothing the intake recorded is lost."""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
from githubkit import AppInstallationAuthStrategy, GitHub
from githubkit.exception import GitHubException, RequestFailed

from contracts.repos import valid_path
from libs.bus.consumer import TryLater
from libs.config import Settings

# What a task's repository may carry: it travels in one command on the bus (8 MB at most).
MAX_FILES = 1000
MAX_FILE_BYTES = 512 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


class _Repo(msgspec.Struct):
    default_branch: str


class _Tree(msgspec.Struct):
    sha: str


class _Commit(msgspec.Struct):
    tree: _Tree


class _BranchCommit(msgspec.Struct):
    commit: _Commit


class _Branch(msgspec.Struct):
    commit: _BranchCommit


class _Entry(msgspec.Struct):
    path: str
    type: str
    sha: str
    size: int | None = None


class _Listing(msgspec.Struct):
    tree: list[_Entry]
    truncated: bool = False


class _Blob(msgspec.Struct):
    content: str
    encoding: str = "base64"


class _Permission(msgspec.Struct):
    permission: str


class _Comment(msgspec.Struct):
    id: int


class Unreachable(Exception):
    """GitHub says the installation cannot reach what was asked (404, 410): the App was removed
    from the repository, or the repository or issue is gone. No retry can change that."""


@dataclass(frozen=True)
class Snapshot:
    branch: str  # the default branch the files were read at
    files: dict[str, str]
    skipped: int  # files left out: binary, too large, or beyond the limits


@contextlib.contextmanager
def _github_errors(doing: str) -> Iterator[None]:
    try:
        yield
    except RequestFailed as exc:
        status = exc.response.status_code
        if status in (403, 429) or status >= 500:
            raise TryLater(f"GitHub answered {status} to {doing}") from None
        if status in (404, 410):
            raise Unreachable(f"GitHub answered {status} to {doing}") from None
        raise
    except (GitHubException, httpx.HTTPError) as exc:
        raise TryLater(f"GitHub could not be reached to {doing}: {type(exc).__name__}") from None


@contextlib.asynccontextmanager
async def installation(settings: Settings, installation_id: int) -> AsyncIterator[GitHub[Any]]:
    assert settings.github_app_id and settings.github_app_private_key, "the intake needs the App"
    auth = AppInstallationAuthStrategy(int(settings.github_app_id), settings.github_app_private_key, installation_id)
    github = GitHub(
        auth, base_url=settings.github_api_url, timeout=settings.github_timeout_s, http_cache=False, auto_retry=False
    )
    async with github:
        yield github


async def permission(github: GitHub[Any], owner: str, repo: str, user: str) -> str:
    """`admin`, `maintain`, `write`, `triage`, `read` or `none` (GitHub's 404: no such user)."""
    with _github_errors(f"read {user}'s permission on {owner}/{repo}"):
        try:
            response = await github.arequest("GET", f"/repos/{owner}/{repo}/collaborators/{user}/permission")
        except RequestFailed as exc:
            if exc.response.status_code == 404:
                return "none"
            raise
    return msgspec.json.decode(response.content, type=_Permission).permission


async def _get(github: GitHub[Any], path: str, into: type[Any], **params: str) -> Any:
    with _github_errors(f"read {path}"):
        response = await github.arequest("GET", path, params=params or None)
    return msgspec.json.decode(response.content, type=into)


def _text(blob: _Blob) -> str | None:
    try:
        content = base64.b64decode(blob.content) if blob.encoding == "base64" else blob.content.encode()
        text = content.decode()
    except (binascii.Error, UnicodeDecodeError):
        return None  # binary: an agent edits text
    return None if "\x00" in text else text


async def repository_files(github: GitHub[Any], owner: str, repo: str) -> Snapshot:
    """The repository's text files at its default branch, within the limits a task carries."""
    base = f"/repos/{owner}/{repo}"
    branch = (await _get(github, base, _Repo)).default_branch
    head = await _get(github, f"{base}/branches/{branch}", _Branch)
    listing = await _get(github, f"{base}/git/trees/{head.commit.commit.tree.sha}", _Listing, recursive="1")
    files: dict[str, str] = {}
    skipped, total = 0, 0
    for entry in listing.tree:
        if entry.type != "blob":
            continue
        size = entry.size or 0
        if (
            len(files) >= MAX_FILES
            or size > MAX_FILE_BYTES
            or total + size > MAX_TOTAL_BYTES
            or not valid_path(entry.path)
        ):
            skipped += 1
            continue
        text = _text(await _get(github, f"{base}/git/blobs/{entry.sha}", _Blob))
        if text is None:
            skipped += 1
            continue
        files[entry.path] = text
        total += len(text.encode())
    return Snapshot(branch, files, skipped + (1 if listing.truncated else 0))


async def comment(github: GitHub[Any], owner: str, repo: str, issue: int, body: str) -> int:
    """Comments on the issue; the comment's id."""
    with _github_errors(f"comment on {owner}/{repo}#{issue}"):
        response = await github.arequest("POST", f"/repos/{owner}/{repo}/issues/{issue}/comments", json={"body": body})
    return msgspec.json.decode(response.content, type=_Comment).id
