"""Pull requests for approved tasks: the task's changes as one commit on its branch, proposed
against its base branch through GitHub's REST API (githubkit), the git-data way: read the base
branch (its head commit and tree), write a tree on that tree, one commit, point the branch at
it, open the pull request.

Most tasks publish to a branch of their own that does not exist yet, so the commit is made on the
base first and the branch created at it: a new branch has no pull request, and the task's is opened
(five calls in all). When the branch exists already, `open_pull_request` looks for an open pull
request from it: this task's (a redelivered approval, or a second replica handling the same one)
is returned as it is, so no second one is ever opened; another task's (a chained task building on
its parent's) gets this task's changes as one more commit on top; with none open (an earlier
attempt that stopped half-way, or a closed pull request) the branch is moved to the new commit: it
is the task's branch. The commit made on the base in those cases stays unreferenced, as git's
garbage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
import urllib.request
import weakref
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar
from urllib.parse import quote

import aiohttp
import httpx
import msgspec
import pydantic
from githubkit import GitHub, Response, TokenAuthStrategy
from githubkit.exception import (
    GitHubException,
    RateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
)
from githubkit.retry import RetryRateLimit, RetryServerError
from githubkit.typing import RetryOption
from httpx_aiohttp import AiohttpTransport
from psycopg_pool import AsyncConnectionPool

from contracts.repos import names_problem
from libs.bus.consumer import TryLater
from libs.config import Settings
from libs.domain.pull_request import PullRequest
from libs.observability.logs import redact
from libs.readmodels.schema import BRANCH_LOCK_CLASS

NO_CREDENTIALS = "no GitHub credentials configured"
NO_CHANGES = "the task changed no files"
FILE_MODE = "100644"
# GitHub cuts titles at 256 characters; a task description is often longer, and multi-line.
MAX_TITLE_CHARS = 120
# A rate limit is waited out in the call only when it lifts within seconds; a longer one, like
# GitHub being away (5xx after githubkit's retries, a timeout, no connection), sends the
# approval back to be tried again later (`TryLater`), for up to RETRY_WINDOW_S after it.
LONGEST_RATE_LIMIT_WAIT = timedelta(seconds=10)
RETRY_WINDOW_S = 3600
SERVER_ERROR_RETRIES = 2


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


class Opened(NamedTuple):
    url: str
    number: int
    body: str


class KeptOpen(httpx.AsyncBaseTransport):
    """One connection pool for every GitHub call of the process.

    githubkit opens an httpx client per call and closes it after, which closes its transport:
    each call would pay for a new connection (and TLS handshake) and a new client's SSL context
    (about 20 ms of CPU). This transport outlives those clients; it goes with the process.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.transport.handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            # httpx-aiohttp reports a refused connection as a connect timeout: say what it was.
            if isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(
                exc.__cause__, aiohttp.ServerTimeoutError
            ):
                raise httpx.ConnectError(str(exc.__cause__), request=request) from exc.__cause__
            raise

    async def aclose(self) -> None:
        pass  # githubkit's per-call clients close this; the pool stays for the next call

    async def close(self) -> None:
        await self.transport.aclose()


_retry_server_error = RetryServerError(SERVER_ERROR_RETRIES)
_retry_rate_limit = RetryRateLimit(1)


def retry_decision(exc: GitHubException, retry_count: int) -> RetryOption:
    option = _retry_server_error(exc, retry_count)
    if option.do_retry:
        return option
    option = _retry_rate_limit(exc, retry_count)
    if option.do_retry and option.retry_after is not None and option.retry_after <= LONGEST_RATE_LIMIT_WAIT:
        return option
    return RetryOption(False)


def transport_for(api_url: str) -> httpx.AsyncBaseTransport:
    # aiohttp under httpx's interface: a fraction of httpcore's per-request CPU, which was most of
    # the executor's time spent on pull requests. It reads HTTPS_PROXY / NO_PROXY only for the
    # transports httpx builds itself, so the proxy is taken from the environment here.
    url = httpx.URL(api_url)
    proxy = None if urllib.request.proxy_bypass(url.host) else urllib.request.getproxies().get(url.scheme)
    return AiohttpTransport(proxy=httpx.Proxy(proxy) if proxy else None)


def github_client(settings: Settings) -> GitHub[TokenAuthStrategy] | None:
    """githubkit's client for `GITHUB_API_URL` with `GITHUB_TOKEN`; None without a token."""
    if not settings.github_token:
        return None
    return GitHub(
        TokenAuthStrategy(settings.github_token),
        base_url=settings.github_api_url,
        timeout=settings.github_timeout_s,
        # Only writes, and reads that must be fresh: a cached list of pull requests could hide
        # the one opened a moment ago.
        http_cache=False,
        auto_retry=retry_decision,
        async_transport=KeptOpen(transport_for(settings.github_api_url)),
    )


async def close_github_client(github: GitHub[Any] | None) -> None:
    """Close the connections `github_client` keeps open (when the service stops)."""
    transport = github.config.async_transport if github is not None else None
    if isinstance(transport, KeptOpen):
        await transport.close()


async def open_pull_request(
    github: GitHub[Any] | None,
    workspace_id: str,
    task_id: str,
    repo: dict[str, Any],
    files: dict[str, str],
    deleted: list[str],
    summaries: list[dict[str, Any]],
    task_url: str | None,
    title: str,
    locks: BranchLocks,
    *,
    approved_at_ms: int | None,
) -> PullRequest:
    """Open (or find) the task's pull request and record the outcome as a `PullRequest`.

    `repo` is the task's RepoContext (`owner`, `repo`, `branch`, `baseBranch`), `files` maps each
    changed path to its new content, `deleted` lists removed paths, `summaries` are the subtasks'
    `{"subtaskId", "agentType", "summary"}`, `title` is the task's (its first line is used).
    A GitHub error becomes `pull_request.failed` with GitHub's message; the token never appears.
    With `approved_at_ms` (when the task was approved, epoch ms; None: no retries), an error
    that passes (a rate limit, GitHub away) raises `TryLater` instead, until RETRY_WINDOW_S after
    the approval: a publish tried again finds what the last attempt left (its branch, its pull
    request).
    """
    if github is None:
        return PullRequest.skipped(workspace_id, task_id, NO_CREDENTIALS)
    target = Target(repo["owner"], repo["repo"], repo["branch"], repo["baseBranch"])
    # Checked at submission; again here for a task stored before that check existed.
    if (refusal := names_problem(*target)) is not None:
        return PullRequest.failed(workspace_id, task_id, refusal)
    removed = sorted(set(deleted) - set(files))
    if not files and not removed:
        return PullRequest.skipped(workspace_id, task_id, NO_CHANGES)
    headline = pull_request_title(title)
    reference = task_reference(task_id, task_url)
    try:
        # One httpx client for the publish's calls: githubkit makes one per call outside `async with`.
        async with locks.held(target), github:
            opened = await _publish(github, target, task_id, headline, reference, summaries, files, removed)
    except (GitHubException, pydantic.ValidationError) as exc:
        error = describe(exc, github)
        passing, delay_s = passes(exc)
        if passing and approved_at_ms is not None:
            since_s = time.time() - approved_at_ms / 1000
            if since_s + (delay_s or 0) < RETRY_WINDOW_S:
                raise TryLater(error, delay_s) from exc
            window = f"{RETRY_WINDOW_S // 60} minutes"
            if since_s >= RETRY_WINDOW_S:
                error += f" (tried again for {window} after the approval)"
            else:  # a rate limit that resets after the window is over
                resets = int(delay_s or 0) // 60
                error += f" (the rate limit resets in {resets} minutes, past the {window} an approval waits)"
        return PullRequest.failed(workspace_id, task_id, error)
    return PullRequest.opened(workspace_id, task_id, opened.url, opened.number)


def passes(exc: Exception) -> tuple[bool, float | None]:
    """Whether a GitHub error may pass if the publish is tried again later, and when to (None:
    the consumer's own retry delay): a rate limit (at its reset), a server error, a timeout, or
    no connection. A refusal (a wrong token, a missing branch) or an answer of the wrong shape
    would only come again."""
    if isinstance(exc, RateLimitExceeded):
        return True, max(1.0, exc.retry_after.total_seconds())
    if isinstance(exc, RequestFailed):
        return exc.response.status_code >= 500, None
    return isinstance(exc, RequestTimeout | RequestError), None


class BranchLocks:
    """One publisher per branch at a time. Two approvals for one branch handled at once would
    both find no pull request and both commit onto the base, the second moving the branch over
    the first (chained tasks share their parent's branch).

    In the process, an asyncio lock per branch; across replicas, given the database, also a
    PostgreSQL advisory lock, taken in a transaction held for the publish: released at its end,
    by commit or rollback, and with the session if the process dies, so no lock outlives its
    holder. The connections come from a small pool opened at the first publish: a connection
    per publish cost the executor and PostgreSQL more CPU than the publish's GitHub calls. A
    publish that waits longer than `POOL_WAIT_S` for one (or finds the database down) raises,
    before any GitHub call, so its approval is redelivered and tried again."""

    POOL_SIZE = 8
    POOL_WAIT_S = 60.0

    def __init__(self, database_url: str | None = None) -> None:
        self.database_url = database_url
        self._local: weakref.WeakValueDictionary[Target, asyncio.Lock] = weakref.WeakValueDictionary()
        self._pool: AsyncConnectionPool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    @contextlib.asynccontextmanager
    async def held(self, target: Target) -> AsyncIterator[None]:
        lock = self._local.setdefault(target, asyncio.Lock())
        async with lock:  # waiters in this process queue here, not on connections
            if self.database_url is None:
                yield
                return
            pool = await self._opened(self.database_url)
            async with pool.connection(timeout=self.POOL_WAIT_S) as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (BRANCH_LOCK_CLASS, branch_key(target)))
                yield

    async def _opened(self, database_url: str) -> AsyncConnectionPool:
        async with self._opening:
            if self._closed:
                raise RuntimeError("the executor is stopping: no more pull requests")
            if self._pool is None:
                pool = AsyncConnectionPool(
                    database_url,
                    min_size=1,
                    max_size=self.POOL_SIZE,
                    open=False,
                    kwargs={"autocommit": True},
                    # A connection PostgreSQL dropped (a restart) is replaced, not handed out.
                    check=AsyncConnectionPool.check_connection,
                )
                await pool.open()
                self._pool = pool
            return self._pool

    async def close(self) -> None:
        async with self._opening:
            self._closed = True
            if self._pool is not None:
                await self._pool.close()
                self._pool = None


def branch_key(target: Target) -> int:
    """A branch as a 32-bit lock key: two branches that share one only wait for each other."""
    name = f"{target.owner}/{target.repo}/{target.branch}".lower()  # GitHub's names ignore case
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big", signed=True)


async def _publish(
    github: GitHub[Any],
    target: Target,
    task_id: str,
    headline: str,
    reference: str,
    summaries: list[dict[str, Any]],
    files: dict[str, str],
    removed: list[str],
) -> Opened:
    message = f"{headline}\n\n{reference}\n"
    body = pull_request_body(reference, summaries, sorted(files), removed)
    commit = await commit_changes(github, target, files, removed, message, onto=target.base)
    if await create_branch(github, target, commit):
        return await create(github, target, headline, body)
    opened = await find_open(github, target)
    if opened is None:
        # No open pull request comes from the branch, so it is moved, not merged.
        await github.rest.git.async_update_ref(*target.path, branch_ref(target.branch), sha=commit, force=True)
        opened = await create(github, target, headline, body)
    elif task_id not in opened.body:
        # Another task's pull request from the same branch (a chained task building on its
        # parent's, say): this task's changes go on top of it as one more commit, and its
        # body gains this task's section, which also marks the task as published. A publish
        # handed back after its commit (GitHub away before the body's update) finds its commit
        # at the branch's head and does not add it again.
        head = await branch_head(github, target, target.branch)
        if task_id not in head.commit.message:
            commit = await commit_changes(github, target, files, removed, message, onto=head)
            await github.rest.git.async_update_ref(*target.path, branch_ref(target.branch), sha=commit, force=False)
        await github.rest.pulls.async_update(
            *target.path, opened.number, body=f"{opened.body.rstrip()}\n\n---\n\n{body}"
        )
    return opened


# --- GitHub calls -----------------------------------------------------------------------------

# Only the fields read here, decoded with msgspec: githubkit's `parsed_data` builds a pydantic
# model of the whole answer (and, for lists, a new TypeAdapter each call), which cost more CPU
# than the request itself.


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


class UnexpectedAnswer(GitHubException):
    """GitHub answered 2xx with a body that is not what its API documents."""


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


def branch_ref(branch: str) -> str:
    # githubkit puts path parameters into the URL as they are; GitHub wants a ref's slashes as
    # they are, so each part is escaped on its own.
    return segments(f"heads/{branch}")


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


# --- words ------------------------------------------------------------------------------------


def pull_request_title(title: str) -> str:
    line = next((line.strip() for line in title.splitlines() if line.strip()), "")
    line = " ".join(line.split()) or "Changes from the agent orchestrator"
    return line if len(line) <= MAX_TITLE_CHARS else f"{line[: MAX_TITLE_CHARS - 1].rstrip()}…"


def task_reference(task_id: str, task_url: str | None) -> str:
    return f"Task: [{task_id}]({task_url})" if task_url else f"Task: `{task_id}`"


def pull_request_body(reference: str, summaries: list[dict[str, Any]], changed: list[str], removed: list[str]) -> str:
    lines = [f"Opened by the agent orchestrator for an approved task. {reference}", "", "## Subtasks", ""]
    lines += [subtask_line(summary) for summary in summaries] or ["(none recorded)"]
    lines += ["", "## Files", ""]
    lines += [f"- changed `{path}`" for path in changed]
    lines += [f"- deleted `{path}`" for path in removed]
    return "\n".join(lines) + "\n"


def subtask_line(summary: dict[str, Any]) -> str:
    # A multi-line summary stays inside its list item: continuation lines are indented.
    text = "\n  ".join(str(summary.get("summary") or "(no summary)").strip().splitlines())
    return f"- **{summary.get('agentType', 'agent')}** `{summary.get('subtaskId', '?')}`: {text}"


def github_message(exc: RequestFailed) -> str:
    """GitHub's own words from an error body: its message and each error's detail."""
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.raw_response.text[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    details = [detail_text(error) for error in body.get("errors") or [] if isinstance(error, dict)]
    return "; ".join(part for part in [str(body.get("message", "")), *details] if part)


def detail_text(error: dict[str, Any]) -> str:
    if error.get("message"):
        return str(error["message"])
    return " ".join(str(error[key]) for key in ("resource", "field", "code") if error.get(key))


def describe(exc: Exception, github: GitHub[Any]) -> str:
    """A clear, token-free sentence for a failed GitHub call."""
    where = f"{github.config.base_url.scheme}://{github.config.base_url.netloc.decode()}"
    if isinstance(exc, RequestFailed):
        request = f"{exc.request.method} {exc.request.url.path}"
        text = f"GitHub answered {exc.response.status_code} to {request}: {github_message(exc)}"
        if isinstance(exc, RateLimitExceeded):
            text += f" (rate limited; retry after {int(exc.retry_after.total_seconds())} s)"
    elif isinstance(exc, RequestTimeout):
        text = f"GitHub at {where} did not answer {exc.request.method} {exc.request.url.path} in time"
    elif isinstance(exc, RequestError):
        text = f"GitHub at {where} could not be reached: {str(exc.exc) or type(exc.exc).__name__}"
    elif isinstance(exc, UnexpectedAnswer | pydantic.ValidationError):
        text = f"GitHub at {where} answered in an unexpected shape: {first_lines(str(exc))}"
    else:
        text = f"GitHub call failed: {type(exc).__name__}"
    return redact(text, credentials(github))


def first_lines(text: str, count: int = 3) -> str:
    return " / ".join(text.splitlines()[:count])


def credentials(github: GitHub[Any]) -> list[str]:
    token = getattr(github.auth, "token", None)
    return [token] if isinstance(token, str) and token else []
