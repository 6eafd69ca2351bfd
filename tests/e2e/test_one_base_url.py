"""One base URL (spec 003's error guidance, issue 18): a client that knows only the gateway's URL
reaches every public route of every spec: 000's tasks and their logs WebSocket, 001's events feed
(resumed by `since_seq` and `Last-Event-ID`), its connection count, the tool call log and its
stream and the debug dump, 002's agent sessions and `/api/agent/*`, 003's `/api/...` and 004's
orchestrations. The stream's and the runtime's answers come back as those services write them
(their error bodies included), an SSE frame as soon as it is sent. Every URL here is built from
`stack.gateway_url` alone."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

DIAGNOSTIC_KEYS = {
    "category",
    "code",
    "data_freshness",
    "doc_url",
    "evidence",
    "id",
    "message",
    "severity",
    "suggested_command",
    "title",
}


@dataclass(frozen=True)
class Workspace:
    id: str
    headers: dict[str, str]

    def orchestration(self, what: str) -> str:
        return f"/api/v1/workspaces/{self.id}/orchestration/{what}"


@dataclass(frozen=True)
class Ran:
    """A workspace of this module's own, where one task has run to review (so its feed, dump and
    tool call log have something in them)."""

    workspace: Workspace
    task_id: str


def own_workspace(stack: Stack) -> Workspace:
    created = new_workspace(stack, "baseurl")
    return Workspace(created["workspaceId"], bearer(created["apiKey"]))


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """The only client these tests use: one base URL, the gateway's."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def ran(stack: Stack) -> Ran:
    workspace = own_workspace(stack)
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=workspace.headers) as client:
        (task_id,) = submit(client, task_request(f"One base URL {uuid.uuid4().hex[:8]}"))
        wait_for(client, task_id, in_review_and_charged)
    return Ran(workspace, task_id)


def frames(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` SSE frames as {id, event, data}; comments and `retry:` skipped."""
    found: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
                if len(found) == count:
                    return found
            fields = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            fields[field] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {len(found)} of {count} frames")


@contextmanager
def following(api: httpx.Client, path: str, headers: dict[str, str]) -> Iterator[Iterator[str]]:
    """An SSE stream's lines after its `: connected` comment."""
    with api.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        yield lines


def assert_diagnostic(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"diagnostic", "error"}
    assert set(body["diagnostic"]) == DIAGNOSTIC_KEYS
    assert body["diagnostic"]["code"] == code
    return body["diagnostic"]  # type: ignore[no-any-return]


def test_spec_000_tasks_and_their_logs_websocket(stack: Stack, api: httpx.Client, ran: Ran) -> None:
    headers = ran.workspace.headers
    task = api.get(f"/tasks/{ran.task_id}", headers=headers)
    missing = api.get(f"/tasks/{uuid.uuid4()}", headers=headers)

    async def first_logs() -> dict[str, Any]:
        url = f"{stack.gateway_url.replace('http://', 'ws://')}/tasks/{ran.task_id}/stream"
        async with connect(url, additional_headers=headers) as ws, asyncio.timeout(10):
            return json.loads(await ws.recv())  # type: ignore[no-any-return]

    logs = asyncio.run(first_logs())

    assert task.status_code == 200 and task.json()["task"]["status"] == "review"
    assert missing.status_code == 404 and set(missing.json()) == {"error", "message"}
    assert logs["type"] == "logs"
    assert logs["data"] and {entry["taskId"] for entry in logs["data"]} == {ran.task_id}


def test_spec_001_feed_resumes_from_since_seq_and_last_event_id(api: httpx.Client, ran: Ran) -> None:
    workspace = ran.workspace
    dump = api.get(workspace.orchestration("debug-dump"), headers=workspace.headers)
    assert dump.status_code == 200, dump.text
    logged = [e["seq"] for e in dump.json()["events"]]
    assert [t["id"] for t in dump.json()["tasks"]] == [ran.task_id]
    assert len(logged) > 6
    feed = workspace.orchestration("events")

    with following(api, f"{feed}?since_seq=0", workspace.headers) as lines:
        replayed = frames(lines, len(logged))
    with following(api, f"{feed}?since_seq={logged[2]}", workspace.headers) as lines:
        after_since = frames(lines, len(logged) - 3)
    with following(api, feed, {**workspace.headers, "Last-Event-ID": str(logged[4])}) as lines:
        after_last = frames(lines, len(logged) - 5)

    assert [f["id"] for f in replayed] == logged
    assert [f["data"]["seq"] for f in replayed] == logged
    assert any(f["event"] == "task.review_requested" for f in replayed)
    assert [f["id"] for f in after_since] == logged[3:]
    assert [f["id"] for f in after_last] == logged[5:]


def test_spec_001_the_feed_through_the_gateway_is_live_and_its_connection_is_counted(
    stack: Stack, api: httpx.Client
) -> None:
    workspace = own_workspace(stack)
    connections = workspace.orchestration("events/connections")

    def count() -> int:
        answer = api.get(connections, headers=workspace.headers)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["count"])

    head = api.get(workspace.orchestration("debug-dump"), headers=workspace.headers).json()["logHead"]
    assert count() == 0
    with following(api, f"{workspace.orchestration('events')}?since_seq={head}", workspace.headers) as lines:
        assert count() == 1
        created = api.post(
            "/tasks", json={"tasks": [task_request("Live through the gateway")]}, headers=workspace.headers
        )
        assert created.status_code == 201, created.text
        (task_id,) = created.json()["taskIds"]
        # The task is submitted after the stream opened, and the stream has not ended: its frame
        # flowed through the gateway as it was sent, not once the stream was over.
        submitted = frames(lines, 1)[0]
        assert count() == 1
    assert submitted["event"] == "task.submitted"
    assert submitted["data"]["payload"]["task_id"] == task_id
    assert submitted["id"] > head
    # The client left: the gateway closed its request to the stream service, which counts it gone.
    deadline = time.monotonic() + 10
    while count() != 0:
        assert time.monotonic() < deadline, "the stream service still counts the closed feed"
        time.sleep(0.05)


def test_spec_001_tool_call_log_pages_and_stream(api: httpx.Client, ran: Ran) -> None:
    workspace = ran.workspace
    page = api.get(workspace.orchestration("log"), params={"limit": 200}, headers=workspace.headers)
    assert page.status_code == 200, page.text
    oldest_first = list(reversed(page.json()["items"]))
    assert oldest_first and {e["taskID"] for e in oldest_first} == {ran.task_id}

    with following(api, f"{workspace.orchestration('log/stream')}?since_seq=0", workspace.headers) as lines:
        streamed = frames(lines, len(oldest_first))

    assert [f["event"] for f in streamed] == ["tool.call"] * len(oldest_first)
    assert [f["data"] for f in streamed] == oldest_first


def test_spec_001_errors_keep_the_streams_body(stack: Stack, api: httpx.Client, ran: Ran) -> None:
    workspace, other = ran.workspace, own_workspace(stack)

    no_key = api.get(workspace.orchestration("events"))
    not_theirs = api.get(workspace.orchestration("debug-dump"), headers=other.headers)
    malformed = api.get(f"{workspace.orchestration('events')}?since_seq=yesterday", headers=workspace.headers)

    assert (no_key.status_code, no_key.json()["error"]) == (401, "unauthorized")
    assert no_key.headers["www-authenticate"].startswith("Bearer")
    assert (not_theirs.status_code, not_theirs.json()["error"]) == (404, "Not found")
    assert (malformed.status_code, malformed.json()["error"]) == (400, "invalid_request")
    for refused in (no_key, not_theirs, malformed):
        assert set(refused.json()) == {"error", "message"}


def test_spec_002_sessions_and_the_agent_api(stack: Stack, api: httpx.Client) -> None:
    workspace = own_workspace(stack)
    sessions = f"/api/v1/workspaces/{workspace.id}/agent-sessions"

    made = api.post(sessions, json={"name": "through-the-gateway", "agent_name": "coder"}, headers=workspace.headers)
    assert made.status_code == 201, made.text
    session, token = made.json()["session"], made.json()["token"]
    me = api.get("/api/agent/me", headers=bearer(token))
    listed = api.get(sessions, headers=workspace.headers)
    soul = api.put(
        f"/api/v1/workspaces/{workspace.id}/agent-souls/coder",
        json={"document": "---\nrole: coder\n---\nWrite small, tested changes.\n"},
        headers=workspace.headers,
    )
    read_soul = api.get("/api/agent/soul", headers=bearer(token))
    no_token = api.get("/api/agent/me")
    nowhere = api.get("/api/agent/nothing-here", headers=bearer(token))
    bad_body = api.post(sessions, json={"name": ""}, headers=workspace.headers)
    stopped = api.delete(f"{sessions}/{session['id']}", headers=workspace.headers)
    after_stop = api.get("/api/agent/me", headers=bearer(token))

    assert me.status_code == 200, me.text
    assert me.json()["me"]["session"]["id"] == session["id"]
    assert me.json()["me"]["workspace"]["id"] == workspace.id
    assert session["id"] in [s["id"] for s in listed.json()["sessions"]]
    assert soul.status_code == 200, soul.text
    assert read_soul.json()["frontmatter"]["role"] == "coder"
    # Refusals under /api/agent/ keep spec 002's diagnostic envelope; the workspace API its own body.
    assert assert_diagnostic(no_token, 401, "session_token_missing")["category"] == "auth"
    assert_diagnostic(nowhere, 404, "Not found")
    assert bad_body.status_code == 400 and set(bad_body.json()) == {"error", "message"}
    assert stopped.status_code == 200, stopped.text
    assert assert_diagnostic(after_stop, 403, "session_stopped")["evidence"]["session_id"] == session["id"]


def test_spec_003_tasks_config_and_startup_check(api: httpx.Client, ran: Ran) -> None:
    headers = ran.workspace.headers

    created = api.post("/api/tasks", json={"tasks": [task_request("Listed on the base URL")]}, headers=headers)
    assert created.status_code == 201, created.text
    (task_id,) = created.json()["taskIds"]
    listed = api.get("/api/tasks", headers=headers)
    status = api.get(f"/api/tasks/{task_id}/status", headers=headers)
    config = api.get("/api/config", headers=headers)
    check = api.get("/api/startup/check", headers=headers)
    missing = api.get(f"/api/tasks/{uuid.uuid4()}/status", headers=headers)

    assert listed.status_code == 200, listed.text
    assert {task_id, ran.task_id} <= {t["id"] for t in listed.json()["tasks"]}
    assert status.status_code == 200 and status.json()["id"] == task_id
    assert config.status_code == 200, config.text
    assert check.status_code == 200, check.text
    checks = {c["name"]: c["status"] for c in check.json()["checks"]}
    assert (checks["service:stream"], checks["service:runtime"]) == ("ok", "ok")
    assert (missing.status_code, set(missing.json())) == (404, {"error", "message"})


def test_spec_004_orchestrations(api: httpx.Client, ran: Ran) -> None:
    listed = api.get("/api/v1/orchestrations", headers=ran.workspace.headers)
    one = api.get("/api/v1/orchestrations/orch-research-report", headers=ran.workspace.headers)
    unknown = api.get("/api/v1/orchestrations/orch-nothing", headers=ran.workspace.headers)

    assert listed.status_code == 200, listed.text
    assert "orch-research-report" in {o["id"] for o in listed.json()}
    assert one.status_code == 200 and one.json()["digest"].startswith("sha256:")
    assert unknown.status_code == 404
