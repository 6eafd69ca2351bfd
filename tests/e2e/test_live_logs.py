"""Spec 000 `GET /tasks/{id}/stream`: live task logs over a WebSocket, end to end.

The lines are a projection of the task's events (model calls, tool calls, a run's start and
end, the pull request): the services publish no log of their own. A client gets what the task's
events say so far, then the lines of its new events, read back the way a client reads them:
through the gateway's WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import nats
import pytest
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from contracts.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, status_is, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

STARTED = "[codegen] attempt 1 started with anthropic claude-sonnet-4-20250514"


@pytest.fixture
def api(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


@pytest.fixture
async def js(stack: Stack) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(stack.nats.url, name="e2e-live-logs")
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def stream_url(stack: Stack, task_id: str) -> str:
    return f"{stack.gateway_url.replace('http://', 'ws://')}/tasks/{task_id}/stream"


async def script(stack: Stack, *behaviours: dict) -> None:
    scripted = await asyncio.to_thread(httpx.post, f"{stack.model_server_url}/_script", json={"behaviours": behaviours})
    assert scripted.status_code == 200


async def receive(ws: ClientConnection) -> dict:
    async with asyncio.timeout(10):
        message = json.loads(await ws.recv())
    assert message["type"] == "logs"
    return message


def messages(message: dict) -> list[str]:
    return [e["message"] for e in message["data"]]


async def closed(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Reads until the server closes the socket; returns its close code and reason."""
    async with asyncio.timeout(30):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
    return ws.close_code, ws.close_reason


async def consumers(js: JetStreamContext) -> int:
    """The followers of every event of EVENTS (the gateway's, the stream service's): other
    services' ordered consumers follow a few subjects each, and one of a process another test
    killed lingers until the server drops it, which must not move this count."""
    infos = await js.consumers_info(EVENTS_STREAM)
    return sum(1 for c in infos if c.config.filter_subject == EVENTS_SUBJECTS)


async def back_to(js: JetStreamContext, count: int) -> bool:
    """The gateway releases its follower of EVENTS just after the last socket closes: allow it a moment."""
    for _ in range(100):
        if await consumers(js) == count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_clients_get_the_backlog_first_then_live_entries_until_the_task_completes(
    stack: Stack, api: httpx.Client, js: JetStreamContext
) -> None:
    description = f"Followed live {uuid.uuid4().hex[:8]}"
    # The codegen's first model call takes a second (the clients connect meanwhile) and asks for a
    # search whose pattern quotes a key; the next call is the default one (write, finish).
    search = {"name": "search", "arguments": {"pattern": "sk-ant-api03-abcdefghijklmnop"}}
    await script(stack, {"match": f"Task: {description}\n", "delay_ms": 1000, "tool_calls": [search]})
    before = await consumers(js)
    (task_id,) = submit(api, task_request(description))
    await asyncio.to_thread(wait_for, api, task_id, lambda task: task["status"] in ("assigned", "running"))

    async with (
        connect(stream_url(stack, task_id), additional_headers=stack.auth) as first,
        connect(stream_url(stack, task_id), additional_headers=stack.auth) as second,
    ):
        backlogs = [(await receive(ws))["data"] for ws in (first, second)]
        assert await consumers(js) == before + 1, "one follower of EVENTS serves every socket of a gateway"
        live: list[list[str]] = [[], []]
        for i, ws in enumerate((first, second)):
            while not any(line.startswith("[test] finished") for line in live[i]):
                live[i] += messages(await receive(ws))
        # Both clients see the same lines, each once, in order: the backlog, then what followed.
        seen = [[e["message"] for e in backlog] + lines for backlog, lines in zip(backlogs, live, strict=True)]
        assert seen[0] == seen[1]
        assert len(set(seen[0])) == len(seen[0])
        assert seen[0][0] == STARTED
        assert not any(e["message"].startswith("[codegen] model call 1") for e in backlogs[0])
        assert "[codegen] Searched for [redacted]" in seen[0]  # the key is masked
        assert any(
            line.startswith("[codegen] model call 1: 1000 in / 200 out tokens, 1 tool call(s)") for line in seen[0]
        )
        first_entry = next(e for e in backlogs[0] if e["message"] == STARTED)
        # The spec's LogEntry, camelCase.
        assert set(first_entry) == {"level", "message", "timestamp", "workerId", "taskId"}
        assert first_entry["level"] == "log" and first_entry["taskId"] == task_id

        await asyncio.to_thread(wait_for, api, task_id, in_review_and_charged)
        decision = {"taskId": task_id, "decision": "approve", "feedback": "ship it"}
        response = await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)
        assert response.status_code == 200, response.text

        tails = []
        for ws in (first, second):
            rest: list[str] = []
            async with asyncio.timeout(30):
                try:
                    while True:
                        rest += messages(json.loads(await ws.recv()))
                except ConnectionClosed:
                    pass
            assert (ws.close_code, ws.close_reason) == (1000, "Task ended")
            tails.append(rest)
        assert tails[0] == tails[1]
        assert any(line.startswith("[executor] pull request opened: ") for line in tails[0]), tails[0]
    assert (await asyncio.to_thread(wait_for, api, task_id, status_is("completed")))["status"] == "completed"

    # Connecting once the task has ended: everything captured, then a clean close.
    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as late:
        assert messages(await receive(late)) == seen[0] + tails[0]
        assert await closed(late) == (1000, "Task ended")
    assert await back_to(js, before)


async def test_a_client_that_leaves_releases_its_reader(stack: Stack, api: httpx.Client, js: JetStreamContext) -> None:
    before = await consumers(js)
    (task_id,) = submit(api, task_request())
    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as ws:
        assert (await receive(ws))["type"] == "logs"  # a first message even when nothing was captured yet
        assert await consumers(js) == before + 1
    assert await back_to(js, before)


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), str(uuid.uuid4()).upper(), "not-a-task"])
async def test_an_unknown_task_is_refused(stack: Stack, task_id: str) -> None:
    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as ws:
        assert await closed(ws) == (4404, "Not found")


async def test_the_agents_own_log_lines_reach_a_client_that_connects_after_the_task_ended(
    stack: Stack, api: httpx.Client
) -> None:
    (task_id,) = submit(api, task_request(f"Logged work {uuid.uuid4().hex[:8]}"))
    await asyncio.to_thread(wait_for, api, task_id, in_review_and_charged)
    decision = {"taskId": task_id, "decision": "approve"}
    assert (await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)).status_code == 200
    await asyncio.to_thread(wait_for, api, task_id, status_is("completed"))

    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as ws:
        backlog = (await receive(ws))["data"]
        assert await closed(ws) == (1000, "Task ended")

    lines = [e["message"] for e in backlog]
    codegen = next(s for s in (await asyncio.to_thread(api.get, f"/tasks/{task_id}")).json()["task"]["subtasks"])
    assert {e["taskId"] for e in backlog} == {task_id}
    assert "[codegen] attempt 1 started with anthropic claude-sonnet-4-20250514" in lines
    assert "[codegen] Wrote src/register.py (66 bytes)" in lines
    assert any(line.startswith("[codegen] model call 1: 1000 in / 200 out tokens") for line in lines)
    assert any(line.startswith("[test] finished in") for line in lines)
    assert any(line.startswith("[executor] pull request opened: ") for line in lines), lines
    assert f"{task_id[:8]}-{codegen['id']}" in {e["workerId"] for e in backlog}
    assert [e["timestamp"] for e in backlog] == sorted(e["timestamp"] for e in backlog)


async def test_a_client_following_a_running_task_gets_the_agents_lines_live(stack: Stack, api: httpx.Client) -> None:
    description = f"Slow model {uuid.uuid4().hex[:8]}"
    # The codegen's model call takes a second: the client connects while the run waits on it.
    script = {"behaviours": [{"match": f"Task: {description}\n", "delay_ms": 1000}]}
    scripted = await asyncio.to_thread(httpx.post, f"{stack.model_server_url}/_script", json=script)
    assert scripted.status_code == 200
    (task_id,) = submit(api, task_request(description))

    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as ws:
        backlog = [e["message"] for e in (await receive(ws))["data"]]
        live: list[str] = []
        while not any(line.startswith("[codegen] finished") for line in live):
            live += [e["message"] for e in (await receive(ws))["data"]]

    # Whatever had happened at connect time came first; the model's answer came a second later.
    lines = backlog + live
    assert lines[0] == "[codegen] attempt 1 started with anthropic claude-sonnet-4-20250514", lines
    assert not any(line.startswith("[codegen] model call") for line in backlog)
    assert any(line.startswith("[codegen] model call 1: 1000 in / 200 out tokens") for line in live), live
    assert "[codegen] Wrote src/register.py (66 bytes)" in live


async def test_revoking_the_key_closes_its_open_log_socket(stack: Stack) -> None:
    created = new_workspace(stack, "revoke")
    key = bearer(created["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as mine:
        (task_id,) = submit(mine, task_request("Watched, then revoked"))
    async with connect(stream_url(stack, task_id), additional_headers=key) as ws:
        await receive(ws)  # the backlog
        revoke = f"{stack.gateway_url}/admin/workspaces/{created['workspaceId']}/keys/{created['keyId']}"
        admin = bearer(stack.admin_token)
        assert (await asyncio.to_thread(httpx.delete, revoke, headers=admin, timeout=10)).status_code == 200
        assert await closed(ws) == (4403, "this API key was revoked")
