"""Spec 000 `GET /tasks/{id}/stream`: live task logs over a WebSocket, end to end.

Log entries are published onto the LOGS stream directly and through a LogPublisher, as a
service would, and read back the way a client reads them: through the gateway's WebSocket.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from contracts.logs import LOGS_STREAM, LogEntry, log_subject
from libs.bus.logs import LogPublisher
from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, status_is, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

# Entries this test publishes carry their own worker id, so they are told apart from any
# entries the services themselves write for the same task.
WORKER = "e2e-live-logs"


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


def entry(task_id: str, message: str) -> LogEntry:
    return LogEntry(level="log", message=message, timestamp=int(time.time() * 1000), worker_id=WORKER, task_id=task_id)


async def publish(js: JetStreamContext, task_id: str, *entries: LogEntry) -> None:
    for e in entries:
        await js.publish(log_subject("default", task_id), msgspec.json.encode(e))


async def receive(ws: ClientConnection) -> dict:
    async with asyncio.timeout(10):
        message = json.loads(await ws.recv())
    assert message["type"] == "logs"
    return message


def ours(message: dict) -> list[str]:
    return [e["message"] for e in message["data"] if e["workerId"] == WORKER]


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
    return (await js.stream_info(LOGS_STREAM)).state.consumer_count


async def no_consumers_left(js: JetStreamContext) -> bool:
    """The gateway releases a reader just after its socket closes: allow it a moment."""
    for _ in range(100):
        if await consumers(js) == 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_clients_get_the_backlog_first_then_live_entries_until_the_task_completes(
    stack: Stack, api: httpx.Client, js: JetStreamContext
) -> None:
    (task_id,) = submit(api, task_request())
    backlog = [entry(task_id, "[codegen] Reading src/register.py"), entry(task_id, "[codegen] Calling the model")]
    await publish(js, task_id, *backlog)

    async with (
        connect(stream_url(stack, task_id), additional_headers=stack.auth) as first,
        connect(stream_url(stack, task_id), additional_headers=stack.auth) as second,
    ):
        for ws in (first, second):
            message = await receive(ws)
            assert ours(message) == [e.message for e in backlog]
            first_of_ours = next(e for e in message["data"] if e["workerId"] == WORKER)
            assert first_of_ours == msgspec.to_builtins(backlog[0])  # the spec's LogEntry, camelCase

        # Published the way the services publish: through a LogPublisher, which masks keys.
        publisher = LogPublisher(js)
        await publisher.start()
        publisher.emit("default", entry(task_id, "[codegen] Retrying with key sk-ant-api03-abcdefghijklmnop"))
        publisher.emit("default", entry(task_id, "[codegen] Wrote src/register.py (2340 bytes)"))
        await publisher.close()
        live = ["[codegen] Retrying with key [redacted]", "[codegen] Wrote src/register.py (2340 bytes)"]
        for ws in (first, second):
            received: list[str] = []
            while len(received) < len(live):  # they may come as one message or two
                received += ours(await receive(ws))
            assert received == live

        await asyncio.to_thread(wait_for, api, task_id, in_review_and_charged)
        decision = {"taskId": task_id, "decision": "approve", "feedback": "ship it"}
        response = await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)
        assert response.status_code == 200, response.text

        assert await closed(first) == (1000, "Task ended")
        assert await closed(second) == (1000, "Task ended")
    assert (await asyncio.to_thread(wait_for, api, task_id, status_is("completed")))["status"] == "completed"

    # Connecting once the task has ended: everything captured, then a clean close.
    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as late:
        assert ours(await receive(late)) == [e.message for e in backlog] + live
        assert await closed(late) == (1000, "Task ended")
    assert await no_consumers_left(js)


async def test_a_client_that_leaves_releases_its_reader(stack: Stack, api: httpx.Client, js: JetStreamContext) -> None:
    (task_id,) = submit(api, task_request())
    async with connect(stream_url(stack, task_id), additional_headers=stack.auth) as ws:
        assert ours(await receive(ws)) == []  # a first message even when nothing was captured
        assert await consumers(js) >= 1
    assert await no_consumers_left(js)


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
