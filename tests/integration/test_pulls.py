"""open_pull_request end to end, as the executor calls it for an approved task: githubkit, through
`github_client`, against the local GitHub server over HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from libs.bus.consumer import TryLater
from libs.config import Settings
from libs.devstack.processes import free_port
from libs.domain.base import EventTypes, event_payload
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.githubserver.app import create_app
from libs.githubserver.state import Hosting
from services.executor.github.branch_locks import BranchLocks
from services.executor.github.client import KeptOpen, close_github_client, github_client, transport_for
from services.executor.github.git_steps import Target, branch_head
from services.executor.github.pull_requests import open_pull_request
from services.executor.github.retries import RETRY_WINDOW_S
from tests.servers import serve_in_thread

TOKEN = "ghp_local_test_token_5f2c"
WORKSPACE = "default"
TASK_ID = "3f2b8c1e-0000-4000-8000-0000000000aa"
TASK_URL = f"http://127.0.0.1:8080/tasks/{TASK_ID}"
REPO = {"owner": "acme", "repo": "api", "branch": "agent/validation", "baseBranch": "main", "files": {}}
FILES = {
    "src/register.py": "def register(user):\n    if 'email' not in user:\n        raise ValueError\n    return user\n",
    "tests/test_register.py": "def test_register():\n    assert True\n",
}
SUMMARIES = [
    {"subtaskId": "1a2b3c4d", "agentType": "codegen", "summary": "Validated the email field."},
    {"subtaskId": "5e6f7a8b", "agentType": "test", "summary": "Added a test for the validation."},
]
TITLE = "Add input validation to the user registration endpoint\n\nReject users without an email."


@pytest.fixture(scope="module")
def github_url() -> Iterator[str]:
    """The local GitHub server on a port of its own, served by uvicorn in a thread."""
    with serve_in_thread(create_app(Hosting(TOKEN))) as url:
        yield url


@pytest.fixture
async def control(github_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=github_url, timeout=10) as http:
        (await http.delete("/_state")).raise_for_status()
        yield http


async def pulls(control: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every pull request on the server, with the files of its head."""
    return (await control.get("/_state")).json()["pulls"]


def settings(api_url: str, token: str | None = TOKEN) -> Settings:
    return Settings(service="executor", database_url="postgresql:///unused", github_token=token, github_api_url=api_url)


@pytest.fixture
async def github(github_url: str, control: httpx.AsyncClient) -> AsyncIterator[GitHub[TokenAuthStrategy]]:
    client = github_client(settings(github_url))
    assert client is not None
    yield client
    await close_github_client(client)


def outcome(pull_request: PullRequest) -> tuple[str, dict[str, Any]]:
    (event,) = pull_request.collect_events()
    return EventTypes.name(type(event)), event_payload(event)


async def publish(github: GitHub[Any] | None, **changes: Any) -> PullRequest:
    arguments: dict[str, Any] = {
        "repo": REPO,
        "files": FILES,
        "deleted": ["README.md"],
        "summaries": SUMMARIES,
        "task_url": TASK_URL,
        "title": TITLE,
    }
    arguments["approved_at_ms"] = None  # tried once: retries are the tests' that pass a time
    return await open_pull_request(github, WORKSPACE, TASK_ID, **(arguments | changes), locks=BranchLocks())


async def test_an_approved_task_becomes_one_pull_request_with_its_changes(
    github: GitHub[TokenAuthStrategy], github_url: str, control: httpx.AsyncClient
) -> None:
    pull_request = await publish(github)

    kind, payload = outcome(pull_request)
    assert kind == "pull_request.opened"
    assert pull_request.id == pull_request_id(TASK_ID)
    assert payload == {"task_id": TASK_ID, "url": f"{github_url}/acme/api/pull/1", "number": 1}
    (pull,) = await pulls(control)
    assert pull["title"] == "Add input validation to the user registration endpoint"
    assert (pull["head"], pull["base"], pull["state"]) == ("agent/validation", "main", "open")
    assert pull["files"] == FILES
    assert (pull["changed"], pull["deleted"]) == (sorted(FILES), ["README.md"])
    assert f"[{TASK_ID}]({TASK_URL})" in pull["body"]
    assert "- **codegen** `1a2b3c4d`: Validated the email field." in pull["body"]
    assert "- **test** `5e6f7a8b`: Added a test for the validation." in pull["body"]
    # One commit, on top of the base branch.
    main = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha
    head = (await github.rest.git.async_get_commit("acme", "api", pull["head_sha"])).parsed_data
    assert [parent.sha for parent in head.parents] == [main]
    assert head.message.startswith("Add input validation to the user registration endpoint\n")


async def test_a_redelivered_approval_finds_the_same_pull_request(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    first = outcome(await publish(github))
    head_before = (await pulls(control))[0]["head_sha"]

    second = outcome(await publish(github))

    (pull,) = await pulls(control)
    assert second == first
    assert pull["head_sha"] == head_before


async def test_a_branch_left_without_a_pull_request_is_moved_to_the_new_commit(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    # An earlier attempt that stopped after pushing its branch.
    main = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha
    base_tree = (await github.rest.git.async_get_commit("acme", "api", main)).parsed_data.tree.sha
    stale_tree = await github.rest.git.async_create_tree(
        "acme", "api", base_tree=base_tree, tree=[{"path": "stale.txt", "content": "half-way\n"}]
    )
    stale = await github.rest.git.async_create_commit(
        "acme", "api", message="stale", tree=stale_tree.parsed_data.sha, parents=[main]
    )
    await github.rest.git.async_create_ref("acme", "api", ref="refs/heads/agent/validation", sha=stale.parsed_data.sha)

    kind, _ = outcome(await publish(github))

    (pull,) = await pulls(control)
    assert kind == "pull_request.opened"
    assert pull["files"] == FILES
    assert pull["head_sha"] != stale.parsed_data.sha


async def test_without_credentials_no_pull_request_is_opened() -> None:
    assert github_client(settings("https://api.github.com", token=None)) is None

    kind, payload = outcome(await publish(None))

    assert (kind, payload) == (
        "pull_request.skipped",
        {"task_id": TASK_ID, "reason": "no GitHub credentials configured"},
    )


async def test_a_task_without_changes_opens_nothing(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    kind, payload = outcome(await publish(github, files={}, deleted=[]))

    assert (kind, payload["reason"]) == ("pull_request.skipped", "the task changed no files")
    assert await pulls(control) == []


async def test_a_branch_that_is_its_base_is_never_rewritten(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    main_before = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha

    kind, payload = outcome(await publish(github, repo=REPO | {"branch": "main"}))

    main_after = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha
    assert kind == "pull_request.failed"
    assert "is the base branch" in payload["error"]
    assert main_after == main_before


@pytest.mark.parametrize(
    "names",
    [{"owner": ".."}, {"repo": ".."}, {"owner": "a/b"}, {"repo": "api/../../orgs"}, {"branch": "x/../../main"}],
    ids=["owner ..", "repo ..", "owner a/b", "repo with ../", "branch with ../"],
)
async def test_a_task_stored_with_names_that_reach_other_paths_makes_no_github_call(
    github_url: str, control: httpx.AsyncClient, names: dict[str, str]
) -> None:
    # A task stored before submission checked its names: the publisher checks them again.
    counting = Counting(KeptOpen(transport_for(github_url)))
    client = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, http_cache=False, async_transport=counting)
    try:
        kind, payload = outcome(await publish(client, repo=REPO | names))
    finally:
        await counting.transport.close()

    assert kind == "pull_request.failed"
    assert "is not a valid" in payload["error"]
    assert counting.requests == []


async def test_each_github_path_segment_is_escaped(github_url: str, control: httpx.AsyncClient) -> None:
    counting = Counting(KeptOpen(transport_for(github_url)))
    client = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, http_cache=False, async_transport=counting)
    try:
        with pytest.raises(RequestFailed):
            await branch_head(client, Target("a/b", "..", "x", "main"), "feature/ü#1")
    finally:
        await counting.transport.close()

    assert counting.raw == ["GET /repos/a%2Fb/%2E%2E/branches/feature/%C3%BC%231"]


async def test_a_wrong_token_fails_with_githubs_words_and_never_the_token(
    github_url: str, control: httpx.AsyncClient
) -> None:
    secret = "ghp_not_the_right_token_9d1e"
    wrong = github_client(settings(github_url, token=secret))

    kind, payload = outcome(await publish(wrong))
    await close_github_client(wrong)

    assert kind == "pull_request.failed"
    assert payload["error"] == "GitHub answered 401 to GET /repos/acme/api/branches/main: Bad credentials"
    assert secret not in payload["error"]


async def test_a_missing_base_branch_fails_with_githubs_404(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    await control.post("/_repos", json={"owner": "acme", "repo": "web", "branch": "trunk", "files": {"a.js": "1\n"}})

    kind, payload = outcome(await publish(github, repo=REPO | {"repo": "web", "baseBranch": "develop"}))

    assert kind == "pull_request.failed"
    assert payload["error"] == "GitHub answered 404 to GET /repos/acme/web/branches/develop: Branch not found"


async def test_an_unreachable_github_fails_clearly() -> None:
    nowhere = github_client(settings(f"http://127.0.0.1:{free_port()}"))

    kind, payload = outcome(await publish(nowhere))
    await close_github_client(nowhere)

    assert kind == "pull_request.failed"
    assert payload["error"].startswith("GitHub at http://127.0.0.1:")
    assert "could not be reached" in payload["error"]
    assert TOKEN not in payload["error"]


class Counting(httpx.AsyncBaseTransport):
    """Records each request's method and path on its way to the local GitHub server."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport
        self.requests: list[str] = []
        self.raw: list[str] = []  # as sent, escaped

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        self.raw.append(f"{request.method} {request.url.raw_path.decode()}")
        return await self.transport.handle_async_request(request)


async def test_a_new_branch_costs_five_api_calls_against_the_rate_limit(
    github_url: str, control: httpx.AsyncClient
) -> None:
    counting = Counting(KeptOpen(transport_for(github_url)))
    client = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, http_cache=False, async_transport=counting)
    try:
        kind, _ = outcome(await publish(client))
    finally:
        await counting.transport.close()

    assert kind == "pull_request.opened"
    # The base branch's head and tree in one read; no look-up of pull requests, since a new
    # branch has none.
    assert counting.requests == [
        "GET /repos/acme/api/branches/main",
        "POST /repos/acme/api/git/trees",
        "POST /repos/acme/api/git/commits",
        "POST /repos/acme/api/git/refs",
        "POST /repos/acme/api/pulls",
    ]


class SlowPulls(httpx.AsyncBaseTransport):
    """A GitHub slow to open pull requests: the moment another replica could slip in."""

    def __init__(self, transport: KeptOpen, delay_s: float) -> None:
        self.transport, self.delay_s = transport, delay_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/pulls"):
            await asyncio.sleep(self.delay_s)
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        pass


async def test_two_replicas_publishing_to_one_branch_at_once_keep_both_tasks_changes(
    github_url: str, control: httpx.AsyncClient, postgres_url: str
) -> None:
    # Two executor replicas (each its own locks), two chained tasks on one branch,
    # approved at the same moment; the first replica's pull request is slow to open.
    slow, fast = KeptOpen(transport_for(github_url)), KeptOpen(transport_for(github_url))
    first_github = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, async_transport=SlowPulls(slow, 0.5))
    second_github = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, async_transport=fast)
    first_task, second_task = TASK_ID, "3f2b8c1e-0000-4000-8000-0000000000bb"
    replicas = BranchLocks(postgres_url), BranchLocks(postgres_url)  # one per executor
    try:
        first = asyncio.create_task(
            open_pull_request(
                first_github,
                WORKSPACE,
                first_task,
                REPO,
                {"a.py": "A = 1\n"},
                [],
                SUMMARIES,
                None,
                "A",
                replicas[0],
                approved_at_ms=None,
            )
        )
        await asyncio.sleep(0.15)  # the first has its commit on the branch and is opening the pull request
        second = await open_pull_request(
            second_github,
            WORKSPACE,
            second_task,
            REPO,
            {"b.py": "B = 2\n"},
            [],
            SUMMARIES,
            None,
            "B",
            replicas[1],
            approved_at_ms=None,
        )
        outcomes = [outcome(await first), outcome(second)]
    finally:
        await slow.close()
        await fast.close()
        for locks in replicas:
            await locks.close()

    (pull,) = await pulls(control)
    assert [kind for kind, _ in outcomes] == ["pull_request.opened", "pull_request.opened"]
    assert {payload["number"] for _, payload in outcomes} == {pull["number"]}
    # Both tasks' changes on the branch, and both tasks named in its pull request.
    assert pull["files"]["a.py"] == "A = 1\n" and pull["files"]["b.py"] == "B = 2\n"
    assert first_task in pull["body"] and second_task in pull["body"]


async def test_a_stopped_executors_branch_locks_refuse_before_any_github_call(postgres_url: str) -> None:
    locks = BranchLocks(postgres_url)
    async with locks.held(Target("acme", "api", "agent/a", "main")):
        pass  # the pool opens at the first publish
    await locks.close()

    with pytest.raises(RuntimeError, match="stopping"):
        async with locks.held(Target("acme", "api", "agent/b", "main")):
            pytest.fail("a publish went on after the executor stopped")


def approved(seconds_ago: float) -> int:
    return int((time.time() - seconds_ago) * 1000)


async def test_a_rate_limited_approval_is_tried_again_when_the_limit_resets_and_then_opens(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient, github_url: str
) -> None:
    # Longer than a call waits out itself (LONGEST_RATE_LIMIT_WAIT, 10 s).
    assert (await control.post("/_rate_limit", json={"seconds": 30})).status_code == 204

    with pytest.raises(TryLater) as later:
        await publish(github, approved_at_ms=approved(seconds_ago=1))

    # Back when GitHub said the limit resets (its x-ratelimit-reset, whole seconds), not at once.
    assert later.value.delay_s is not None and 29 <= later.value.delay_s <= 31
    assert "GitHub answered 403" in str(later.value) and "rate limit" in str(later.value)
    assert TOKEN not in str(later.value)
    assert await pulls(control) == [], "nothing opened while it is limited"

    await control.post("/_rate_limit", json={"seconds": 0})  # the limit resets
    kind, payload = outcome(await publish(github, approved_at_ms=approved(seconds_ago=31)))
    assert kind == "pull_request.opened"
    assert payload["url"] == f"{github_url}/acme/api/pull/1"


async def test_an_approval_that_could_not_get_through_for_an_hour_fails_saying_so(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    await control.post("/_rate_limit", json={"seconds": 60})

    kind, payload = outcome(await publish(github, approved_at_ms=approved(seconds_ago=RETRY_WINDOW_S + 10)))

    assert kind == "pull_request.failed"
    assert payload["error"].startswith("GitHub answered 403 to GET /repos/acme/api/branches/main: API rate limit")
    assert payload["error"].endswith("(tried again for 60 minutes after the approval)")


async def test_a_rate_limit_that_resets_after_the_hour_fails_saying_when(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    await control.post("/_rate_limit", json={"seconds": 150})

    kind, payload = outcome(await publish(github, approved_at_ms=approved(seconds_ago=RETRY_WINDOW_S - 60)))

    assert kind == "pull_request.failed"
    assert payload["error"].endswith("(the rate limit resets in 2 minutes, past the 60 minutes an approval waits)")


async def test_github_away_is_tried_again_with_the_consumers_delay() -> None:
    nowhere = github_client(settings(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(TryLater) as later:
            await publish(nowhere, approved_at_ms=approved(seconds_ago=1))
    finally:
        await close_github_client(nowhere)

    assert later.value.delay_s is None, "no reset time to go by: the consumer backs off"
    assert "could not be reached" in str(later.value)


async def test_a_refusal_is_not_tried_again(github_url: str, control: httpx.AsyncClient) -> None:
    wrong = github_client(settings(github_url, token="ghp_not_the_right_token_9d1e"))
    try:
        kind, _ = outcome(await publish(wrong, approved_at_ms=approved(seconds_ago=1)))
    finally:
        await close_github_client(wrong)

    assert kind == "pull_request.failed", "a wrong token would be as wrong later"


class BodyUpdatesFail(httpx.AsyncBaseTransport):
    """A GitHub that fails just as a pull request's body is to be updated (a 404 each time: no
    retries inside the call, so the test does not wait out githubkit's backoff on a 5xx)."""

    def __init__(self, transport: KeptOpen) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH" and "/pulls/" in request.url.path:
            return httpx.Response(404, json={"message": "Not Found"}, request=request)
        return await self.transport.handle_async_request(request)

    async def aclose(self) -> None:
        pass


async def commit_messages(github: GitHub[TokenAuthStrategy], branch: str) -> list[str]:
    """The branch's commits' messages, head first, down to the first (the seed) commit."""
    head = (await github.rest.git.async_get_ref("acme", "api", f"heads/{branch}")).parsed_data.object_.sha
    messages = []
    while head:
        commit = (await github.rest.git.async_get_commit("acme", "api", head)).parsed_data
        messages.append(commit.message)
        head = commit.parents[0].sha if commit.parents else ""
    return messages


async def publish_child(github: GitHub[Any], task_id: str) -> PullRequest:
    """A chained task's publish onto its parent's branch (REPO's), with one file of its own."""
    return await open_pull_request(
        github,
        WORKSPACE,
        task_id,
        REPO,
        {"c.py": "C = 3\n"},
        [],
        SUMMARIES,
        None,
        "C",
        BranchLocks(),
        approved_at_ms=None,
    )


async def test_a_chained_publish_tried_again_after_its_commit_does_not_commit_twice(
    github: GitHub[TokenAuthStrategy], github_url: str, control: httpx.AsyncClient
) -> None:
    child = "3f2b8c1e-0000-4000-8000-0000000000cc"
    parent_pull = outcome(await publish(github))  # the parent's pull request, from the branch
    assert parent_pull[0] == "pull_request.opened"
    away = KeptOpen(transport_for(github_url))
    flaky = GitHub(TokenAuthStrategy(TOKEN), base_url=github_url, async_transport=BodyUpdatesFail(away))
    try:
        # The child's changes are committed on the branch, then the body's update fails.
        first = await publish_child(flaky, child)
    finally:
        await away.close()
    assert outcome(first)[0] == "pull_request.failed"

    again = await publish_child(github, child)

    assert outcome(again)[0] == "pull_request.opened"
    (pull,) = await pulls(control)
    assert child in pull["body"] and pull["files"]["c.py"] == "C = 3\n"
    children = [m for m in await commit_messages(github, REPO["branch"]) if child in m]
    assert len(children) == 1, "the child's commit once, though it was published twice"
