"""Claiming the run: long-polls in pieces of at most 30 s until the claim's deadline, names the run
only when told one, tries again while the agent API is out of reach, and stops at a refusal."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from services.worker import claiming
from services.worker.agent_api import Claim, ClaimNext, Refused, RunRef, TaskRef, Unavailable
from services.worker.claiming import NotClaimed, claim
from services.worker.config import load_config

ENV = {"ORCHESTRATOR_AGENT_URL": "http://127.0.0.1:8082", "ORCHESTRATOR_SESSION_TOKEN": "ags_x"}
CLAIMED = msgspec.convert(
    {
        "claim_token": "clm_x",
        "run": {"id": "run-1"},
        "task": {"id": "task-1"},
        "input": {
            "subtask_id": "s1",
            "agent_type": "codegen",
            "description": "d",
            "attempt": 1,
            "files": {},
            "earlier": [],
            "previous": None,
            "config": {},
        },
    },
    Claim,
)


class Clock:
    """Time that passes only as the fake API's long-polls and the sleeps say."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeApi:
    def __init__(self, clock: Clock, answers: list[Claim | Exception | None]) -> None:
        self.clock, self.answers = clock, answers
        self.bodies: list[dict[str, Any]] = []

    async def claim_next(self, body: ClaimNext) -> Claim | None:
        self.bodies.append(msgspec.to_builtins(body))
        found = self.answers.pop(0) if self.answers else None
        if isinstance(found, Exception):
            raise found  # at once, as a server out of reach does
        self.clock.now += body.wait_seconds if found is None else 0.1
        return found


@pytest.fixture(autouse=True)
def sleeps_pass_the_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()

    async def sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr(claiming.asyncio, "sleep", sleep)
    return clock


async def test_it_long_polls_in_pieces_until_a_run_is_claimed(sleeps_pass_the_clock: Clock) -> None:
    api = FakeApi(sleeps_pass_the_clock, [None, None, CLAIMED])

    found = await claim(api, load_config(ENV), sleeps_pass_the_clock)  # type: ignore[arg-type]

    assert found.run == RunRef(id="run-1") and found.task == TaskRef(id="task-1")
    assert api.bodies == [{"lease_ttl_seconds": 30, "wait_seconds": 30.0}] * 3, "no run_id unless given one"


async def test_it_names_the_run_it_was_given_and_its_lease(sleeps_pass_the_clock: Clock) -> None:
    config = load_config({**ENV, "ORCHESTRATOR_RUN_ID": "run-7", "ORCHESTRATOR_LEASE_TTL_SECONDS": "60"})
    api = FakeApi(sleeps_pass_the_clock, [CLAIMED])

    await claim(api, config, sleeps_pass_the_clock)  # type: ignore[arg-type]

    assert api.bodies == [{"lease_ttl_seconds": 60, "wait_seconds": 30.0, "run_id": "run-7"}]


async def test_nothing_ready_by_the_deadline_is_not_claimed(sleeps_pass_the_clock: Clock) -> None:
    config = load_config({**ENV, "ORCHESTRATOR_CLAIM_WAIT_SECONDS": "70", "ORCHESTRATOR_RUN_ID": "run-7"})
    api = FakeApi(sleeps_pass_the_clock, [])

    with pytest.raises(NotClaimed) as missed:
        await claim(api, config, sleeps_pass_the_clock)  # type: ignore[arg-type]

    assert [b["wait_seconds"] for b in api.bodies] == [30.0, 30.0, 10.0]
    assert str(missed.value) == "run run-7 could not be claimed within 70 s: nothing was ready"


async def test_an_agent_api_out_of_reach_is_tried_again_and_a_refusal_is_final(sleeps_pass_the_clock: Clock) -> None:
    api = FakeApi(sleeps_pass_the_clock, [Unavailable("HTTP 502"), Unavailable("ClientConnectorError"), CLAIMED])
    assert await claim(api, load_config(ENV), sleeps_pass_the_clock) == CLAIMED  # type: ignore[arg-type]
    assert len(api.bodies) == 3

    refused = FakeApi(sleeps_pass_the_clock, [Refused(403, "session_stopped", "the session is stopped"), CLAIMED])
    with pytest.raises(NotClaimed) as stopped:
        await claim(refused, load_config(ENV), sleeps_pass_the_clock)  # type: ignore[arg-type]
    assert str(stopped.value) == "the claim was refused: session_stopped: the session is stopped"
    assert len(refused.bodies) == 1


async def test_an_agent_api_out_of_reach_until_the_deadline_is_not_claimed(sleeps_pass_the_clock: Clock) -> None:
    config = load_config({**ENV, "ORCHESTRATOR_CLAIM_WAIT_SECONDS": "5"})
    api = FakeApi(sleeps_pass_the_clock, [Unavailable("ClientConnectorError")] * 10)

    with pytest.raises(NotClaimed) as missed:
        await claim(api, config, sleeps_pass_the_clock)  # type: ignore[arg-type]

    assert "could not be reached" in str(missed.value) and len(api.bodies) == 3  # after waits of 1 s and 2 s
