"""How the worker ends a claimed run, against a fake agent API and a fake model: the server's
verdict decides success, an end the server cannot be reached for is sent again, a lost lease
stops the agent, and a stop gives the run back."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from contracts.agent_tasks import Complete, Fail, FileToFetch, Release, RunInput
from libs.eventstore.blobs import digest_of
from libs.llm.conversation import ToolUse, Turn, Usage
from services.worker import run as running
from services.worker.agent_api import Claim, EndedLease, EndedRun, LeaseAnswer, Refused, RunRef, TaskRef, Unavailable
from services.worker.run import STOPPED, work

ORIGINAL = "def register(user):\n    return user\n"
DIGEST = digest_of(ORIGINAL)
CLAIM = Claim(
    claim_token="clm_" + "c" * 43,
    run=RunRef(id="run-1"),
    task=TaskRef(id="task-1"),
    input=RunInput(
        subtask_id="s1",
        agent_type="codegen",
        description="Validate the user",
        attempt=1,
        files={"src/register.py": FileToFetch(digest=DIGEST, size=len(ORIGINAL), url=f"/api/agent/files/{DIGEST}")},
        earlier=[],
        previous=None,
        config={},
    ),
)


def answer(status: str, error: str | None = None) -> LeaseAnswer:
    return LeaseAnswer(lease=EndedLease(status=status), run=EndedRun(status=status, error=error))


class FakeApi:
    def __init__(self, ends: list[LeaseAnswer | Exception] | None = None, heartbeat: Exception | None = None) -> None:
        self.ends = ends or [answer("completed")]
        self.heartbeat_error = heartbeat
        self.sent: list[tuple[str, Any]] = []
        self.third_heartbeat = asyncio.Event()

    async def file(self, url: str, digest: str) -> str:
        return ORIGINAL

    async def heartbeat(self, run_id: str, claim_token: str) -> None:
        self.sent.append(("heartbeat", claim_token))
        if len(self.sent) == 3:
            self.third_heartbeat.set()
        if self.heartbeat_error is not None:
            raise self.heartbeat_error

    async def _end(self, verb: str, body: Any) -> LeaseAnswer:
        self.sent.append((verb, body))
        found = self.ends.pop(0)
        if isinstance(found, Exception):
            raise found
        return found

    async def complete(self, run_id: str, body: Complete) -> LeaseAnswer:
        return await self._end("complete", body)

    async def fail(self, run_id: str, body: Fail) -> LeaseAnswer:
        return await self._end("fail", body)

    async def release(self, run_id: str, body: Release) -> LeaseAnswer:
        return await self._end("release", body)


class FakeModel:
    """Writes the file and finishes in one turn; or, `hang`, never answers."""

    def __init__(self, hang: bool = False) -> None:
        self.hang, self.called = hang, asyncio.Event()

    async def converse(self, *args: Any) -> Turn:
        self.called.set()
        if self.hang:
            await asyncio.Event().wait()
        uses = [
            ToolUse("t1", "write_file", {"path": "src/register.py", "content": "# checked\n" + ORIGINAL}),
            ToolUse("t2", "finish", {"summary": "checked the user"}),
        ]
        return Turn(
            text="",
            tool_uses=uses,
            usage=Usage(input_tokens=1000, output_tokens=200),
            stop_reason="tool_use",
            duration_ms=5,
        )


@pytest.fixture(autouse=True)
def no_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(running, "END_TRIES_DELAYS_S", (0.0, 0.0, 0.0))


async def test_a_run_the_server_completes_succeeded_with_the_changes_and_usage() -> None:
    api = FakeApi()
    ended = await work(api, FakeModel(), CLAIM, lease_ttl_s=30, max_turns=5)  # type: ignore[arg-type]

    assert ended.succeeded and ended.error is None and (ended.run_id, ended.task_id) == ("run-1", "task-1")
    assert (ended.model_calls, ended.tool_calls, ended.input_tokens, ended.output_tokens) == (1, 2, 1000, 200)
    ((verb, body),) = api.sent
    assert verb == "complete" and body.claim_token == CLAIM.claim_token
    assert body.result.files == {"src/register.py": "# checked\n" + ORIGINAL}
    assert body.result.summary == "checked the user" and body.result.usage.calls == 3


async def test_a_run_the_servers_checks_fail_is_failed_with_their_problems() -> None:
    api = FakeApi([answer("failed", "self-heal checks failed:\nsrc/register.py: SyntaxError")])
    ended = await work(api, FakeModel(), CLAIM, lease_ttl_s=30, max_turns=5)  # type: ignore[arg-type]

    assert not ended.succeeded and ended.error == "self-heal checks failed:\nsrc/register.py: SyntaxError"


async def test_an_end_the_server_could_not_take_is_sent_again_and_a_refusal_is_not() -> None:
    api = FakeApi([Unavailable("HTTP 503"), Unavailable("ClientConnectorError"), answer("completed")])
    assert (await work(api, FakeModel(), CLAIM, 30, 5)).succeeded  # type: ignore[arg-type]
    assert [verb for verb, _ in api.sent] == ["complete"] * 3

    refused = FakeApi([Refused(409, "run_not_claimed", "run run-1 is not claimed"), answer("completed")])
    ended = await work(refused, FakeModel(), CLAIM, 30, 5)  # type: ignore[arg-type]
    assert not ended.succeeded and ended.error == "the run's end was refused: run_not_claimed: run run-1 is not claimed"
    assert len(refused.sent) == 1


async def test_an_agent_that_cannot_finish_fails_the_run_retryable() -> None:
    class Talker(FakeModel):
        async def converse(self, *args: Any) -> Turn:
            return Turn("I would rather talk.", [], Usage(input_tokens=10, output_tokens=5), "end_turn", 5)

    api = FakeApi([answer("failed")])
    ended = await work(api, Talker(), CLAIM, lease_ttl_s=30, max_turns=2)  # type: ignore[arg-type]

    ((verb, body),) = api.sent
    assert verb == "fail" and body.retryable and body.error == "the agent did not call finish within 2 model calls"
    assert body.usage.input_tokens == 20 and body.usage.calls == 2
    assert not ended.succeeded and ended.error == body.error


async def test_a_lost_lease_stops_the_agent_and_ends_nothing() -> None:
    api = FakeApi(heartbeat=Refused(409, "task_ended", "task task-1 is cancelled"))
    ended = await asyncio.wait_for(work(api, FakeModel(hang=True), CLAIM, 1, 5), 5)  # type: ignore[arg-type]

    assert not ended.succeeded and "the lease was lost" in (ended.error or "")
    assert [verb for verb, _ in api.sent] == ["heartbeat"], "no complete, fail or release for a run no longer its"


async def test_heartbeats_keep_the_lease_every_third_of_it_and_a_failed_one_is_not_the_end() -> None:
    api = FakeApi(heartbeat=Unavailable("HTTP 502"))
    model = FakeModel(hang=True)
    working = asyncio.create_task(work(api, model, CLAIM, 1, 5))  # type: ignore[arg-type]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(api.third_heartbeat.wait(), 5)
    # A third of a second apart: three in about a second, every one failed, and the agent still works.
    assert [v for v, _ in api.sent] == ["heartbeat"] * 3 and not working.done()
    assert asyncio.get_running_loop().time() - started >= 0.9
    working.cancel()
    with pytest.raises(asyncio.CancelledError):
        await working


async def test_a_stopped_worker_releases_its_run_with_what_it_used() -> None:
    api = FakeApi([answer("released")])
    model = FakeModel(hang=True)
    working = asyncio.create_task(work(api, model, CLAIM, 30, 5))  # type: ignore[arg-type]
    await asyncio.wait_for(model.called.wait(), 5)
    working.cancel()
    with pytest.raises(asyncio.CancelledError):
        await working

    ((verb, body),) = api.sent
    assert verb == "release" and body.reason == STOPPED and body.claim_token == CLAIM.claim_token
