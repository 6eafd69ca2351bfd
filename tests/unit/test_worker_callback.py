"""The worker's report to its callback URL: sent with the callback token, tried again while the
receiver fails or cannot be reached, and not again once it answered (a 2xx or a 4xx).

The receiver here is a small local server standing in for the product's route, recording what it
was sent and answering with the statuses the test gives it."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.worker.callback import Metadata, Report, send_report
from services.worker.config import load_config
from services.worker.main import report_of
from services.worker.run import Ended

TOKEN = "cbt_" + "t" * 40
NO_WAIT = (0.0, 0.0, 0.0, 0.0)
REPORT = Report(
    task_id="task-1",
    run_id="run-1",
    status="failed",
    error="the agent did not call finish within 24 model calls",
    metadata=Metadata(machine_id="148e21ea7d4389", model_calls=24, tool_calls=30, input_tokens=9000, output_tokens=700),
)


class Receiver:
    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.json()))
        status = self.statuses.pop(0) if self.statuses else 200
        return web.json_response({}, status=status)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def serve(receiver: Receiver) -> TestServer:
    app = web.Application()
    app.router.add_post("/runs/report", receiver.handle)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_the_report_is_sent_once_with_the_token_and_the_runs_end(http: aiohttp.ClientSession) -> None:
    receiver = Receiver([204])
    server = await serve(receiver)
    try:
        status = await send_report(http, str(server.make_url("/runs/report")), TOKEN, REPORT, NO_WAIT)
    finally:
        await server.close()

    assert status == 204
    ((headers, body),) = receiver.received
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert body == {
        "taskId": "task-1",
        "runId": "run-1",
        "status": "failed",
        "prUrl": None,
        "error": "the agent did not call finish within 24 model calls",
        "metadata": {
            "machineId": "148e21ea7d4389",
            "modelCalls": 24,
            "toolCalls": 30,
            "inputTokens": 9000,
            "outputTokens": 700,
        },
    }


async def test_a_failing_receiver_is_tried_again_until_it_takes_the_report(http: aiohttp.ClientSession) -> None:
    receiver = Receiver([503, 500, 200])
    server = await serve(receiver)
    try:
        status = await send_report(http, str(server.make_url("/runs/report")), TOKEN, REPORT, NO_WAIT)
    finally:
        await server.close()

    assert status == 200
    assert len(receiver.received) == 3 and all(body == receiver.received[0][1] for _, body in receiver.received)


@pytest.mark.parametrize("refusal", [400, 401, 404, 409, 422])
async def test_a_refusal_is_the_answer_and_is_logged(
    http: aiohttp.ClientSession, refusal: int, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = Receiver([refusal, 200])
    server = await serve(receiver)
    try:
        with caplog.at_level(logging.WARNING, "services.worker.callback"):
            status = await send_report(http, str(server.make_url("/runs/report")), TOKEN, REPORT, NO_WAIT)
    finally:
        await server.close()

    assert status == refusal and len(receiver.received) == 1, "never sent again"
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"HTTP {refusal}" in line and TOKEN not in line
    if refusal == 409:
        assert "a different report of this run was recorded already" in line


async def test_a_receiver_never_reached_is_tried_five_times_then_given_up(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as unused:  # a port nothing listens on
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/runs/report"
    with caplog.at_level(logging.WARNING, "services.worker.callback"):
        status = await send_report(http, url, TOKEN, REPORT, NO_WAIT)

    assert status is None
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "could not reach" in line]) == 5
    assert lines[-1] == "callback: the report could not be sent after 5 tries"


async def test_it_waits_longer_between_each_try(http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        if seconds:  # aiohttp's own yields to the loop are not the worker's waits
            waited.append(seconds)

    monkeypatch.setattr("asyncio.sleep", sleep)
    receiver = Receiver([502, 502, 502, 502, 502])
    server = await serve(receiver)
    try:
        status = await send_report(http, str(server.make_url("/runs/report")), TOKEN, REPORT)
    finally:
        await server.close()

    assert status == 502 and len(receiver.received) == 5
    assert waited == [1.0, 2.0, 4.0, 8.0]


def test_the_report_says_what_the_server_recorded_and_which_task_the_worker_was_started_for() -> None:
    env = {"ORCHESTRATOR_AGENT_URL": "http://127.0.0.1:8082", "ORCHESTRATOR_SESSION_TOKEN": "ags_x"}
    ended = Ended(succeeded=True, run_id="run-1", task_id="task-of-the-run", model_calls=2, tool_calls=3)

    claimed_task = report_of(load_config(env), ended)
    given_task = report_of(load_config({**env, "ORCHESTRATOR_TASK_ID": "task-given", "FLY_MACHINE_ID": "m1"}), ended)

    assert (claimed_task.task_id, claimed_task.status, claimed_task.error) == ("task-of-the-run", "succeeded", None)
    assert (given_task.task_id, given_task.metadata.machine_id) == ("task-given", "m1")
    assert (given_task.metadata.model_calls, given_task.metadata.tool_calls) == (2, 3)
