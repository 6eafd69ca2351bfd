"""Runs waiting for a human: the bus brings the outcome, the event store backs it up (one read
for every waiting question), and a wait ends with its question's life
(`services/executor/questions.Answers`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import msgspec
import pytest
from nats.js import JetStreamContext

from contracts.events import EventEnvelope
from contracts.questions import QuestionItem, QuestionOption, ToolRef
from contracts.subjects import event_subject
from libs.domain.gate import QuestionGate, question_gate_id
from libs.eventstore.store import EventStore
from services.executor.questions import Answers

pytestmark = pytest.mark.integration

WS = "ws-questions"
QUESTION = QuestionItem(
    question="Which greeting?", header="Greeting", options=[QuestionOption(label="Hello"), QuestionOption(label="Hi")]
)


def asked(store: EventStore, expires_in_s: float = 3600) -> QuestionGate:
    question_id = f"que_{uuid.uuid4().hex}"
    gate = QuestionGate.ask(
        WS,
        question_id,
        "task-1",
        "run-1",
        [QUESTION],
        ToolRef(message_id="m", call_id="c"),
        int((time.time() + expires_in_s) * 1000),
    )
    store.save([gate])
    return gate


def later(store: EventStore, question_id: str, change: str) -> None:
    """Review records the question's outcome."""
    gate_id = question_gate_id(question_id)
    gate = store.load_many([gate_id])[gate_id]
    assert isinstance(gate, QuestionGate)
    if change == "answer":
        gate.answer([["Hi"]])
    else:
        gate.expire()
    store.save([gate])


@contextlib.asynccontextmanager
async def checking(store: EventStore, check_every_s: float, grace_s: float = 60.0) -> AsyncIterator[Answers]:
    """An executor's `Answers` with its store checks running (and no bus, unless a test starts it)."""
    answers = Answers(store, check_every_s, grace_s)
    answers.start_checks()
    try:
        yield answers
    finally:
        await answers.stop()


async def wait_for(answers: Answers, gate: QuestionGate, expires_at: int | None = -1) -> list[list[str]] | None:
    """As a run waits: expect, (ask,) then the outcome; forgotten however it ends."""
    answers.expect(gate.question_id)
    try:
        return await answers.outcome(gate.question_id, gate.expires_at if expires_at == -1 else expires_at)
    finally:
        answers.forget(gate.question_id)


async def test_the_answer_on_the_bus_ends_the_wait_at_once(store: EventStore, js: JetStreamContext) -> None:
    gate = asked(store)
    answers = Answers(store, check_every_s=60)
    await answers.start(js)
    try:
        waiting = asyncio.create_task(wait_for(answers, gate))
        await asyncio.sleep(0.05)
        assert not waiting.done()

        answered = EventEnvelope(
            seq=1,
            type="question_gate.answered",
            workspace_id=WS,
            aggregate_id=str(gate.id),
            version=2,
            occurred_at=0,
            payload={"question_id": gate.question_id, "task_id": "task-1", "run_id": "run-1", "answers": [["Hello"]]},
        )
        await js.publish(event_subject(WS, answered.type), msgspec.json.encode(answered))

        assert await asyncio.wait_for(waiting, 2) == [["Hello"]]
        assert answers.waiting == {} and answers.deadlines == {}
    finally:
        await answers.stop()


async def test_an_answer_the_bus_lost_is_found_in_the_event_store(store: EventStore) -> None:
    gate = asked(store)
    async with checking(store, check_every_s=0.1) as answers:
        waiting = asyncio.create_task(wait_for(answers, gate))
        await asyncio.sleep(0.25)
        assert not waiting.done(), "still open: the run keeps waiting"

        await asyncio.to_thread(later, store, gate.question_id, "answer")

        assert await asyncio.wait_for(waiting, 2) == [["Hi"]]


async def test_an_expiry_the_bus_lost_is_found_in_the_event_store(store: EventStore) -> None:
    gate = asked(store)
    await asyncio.to_thread(later, store, gate.question_id, "expire")

    async with checking(store, check_every_s=0.1) as answers:
        assert await asyncio.wait_for(wait_for(answers, gate), 2) is None


async def test_one_read_serves_every_waiting_run(store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    gates = [asked(store) for _ in range(3)]
    for gate in gates:
        await asyncio.to_thread(later, store, gate.question_id, "answer")
    real, reads = store.load_many, []

    def counted(ids: list[UUID]) -> dict[UUID, Any]:
        reads.append(sorted(ids))
        return real(ids)

    monkeypatch.setattr(store, "load_many", counted)
    async with checking(store, check_every_s=0.2) as answers:
        outcomes = await asyncio.wait_for(asyncio.gather(*(wait_for(answers, g) for g in gates)), 3)

    assert outcomes == [[["Hi"]]] * 3
    assert reads == [sorted(g.id for g in gates)], "the three waits ended on one read"


async def test_a_question_nobody_closes_ends_the_wait_after_its_expiry_and_the_grace(store: EventStore) -> None:
    started = time.monotonic()
    gate = asked(store, expires_in_s=0.2)

    async with checking(store, check_every_s=60, grace_s=0.3) as answers:
        outcome = await asyncio.wait_for(wait_for(answers, gate), 5)

    assert outcome is None
    # Not before its expiry and the grace, though the store was not read in between.
    assert 0.5 <= time.monotonic() - started < 3


async def test_a_new_waits_deadline_is_kept_though_others_keep_coming(store: EventStore) -> None:
    # Questions asked one after another must not keep pushing the first one's end away.
    first = asked(store, expires_in_s=0.2)
    async with checking(store, check_every_s=60, grace_s=0.3) as answers:
        ending = asyncio.create_task(wait_for(answers, first))
        others = []
        for _ in range(8):
            await asyncio.sleep(0.1)
            others.append(asyncio.create_task(wait_for(answers, asked(store))))
        assert await asyncio.wait_for(ending, 2) is None
        assert not any(o.done() for o in others), "the others' questions are open and far from expiry"
        for other in others:
            other.cancel()
        await asyncio.gather(*others, return_exceptions=True)
    assert answers.waiting == {} and answers.deadlines == {}


async def test_the_checks_keep_their_pace_though_new_waits_keep_coming(store: EventStore) -> None:
    lost = asked(store)
    await asyncio.to_thread(later, store, lost.question_id, "answer")
    async with checking(store, check_every_s=0.3) as answers:
        found = asyncio.create_task(wait_for(answers, lost))
        others = []
        for _ in range(10):  # a new question every 0.1 s, for a second
            await asyncio.sleep(0.1)
            others.append(asyncio.create_task(wait_for(answers, asked(store))))
        assert found.done() and found.result() == [["Hi"]]
        for other in others:
            other.cancel()
        await asyncio.gather(*others, return_exceptions=True)


async def test_a_check_that_fails_is_tried_again_after_a_pause_not_at_once(store: EventStore) -> None:
    gate = asked(store, expires_in_s=-1)  # past its expiry: the next check is due at once
    answers = Answers(store, check_every_s=60, grace_s=0)
    real, calls = answers.check, []

    async def broken_once() -> None:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("a bug in the check")
        await real()

    answers.check = broken_once  # type: ignore[method-assign]
    answers.start_checks()
    try:
        outcome = await asyncio.wait_for(wait_for(answers, gate), 5)
    finally:
        await answers.stop()

    assert outcome is None
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.9, "a second check, a second later"


async def test_an_expiry_the_ask_did_not_carry_is_taken_from_the_question(store: EventStore) -> None:
    # A review replica older than the expiry in its reply: the gate it saved says when.
    gate = asked(store, expires_in_s=0.2)

    async with checking(store, check_every_s=0.1, grace_s=0.3) as answers:
        outcome = await asyncio.wait_for(wait_for(answers, gate, expires_at=None), 5)

    assert outcome is None
    assert time.time() >= gate.expires_at / 1000 + 0.3


async def test_a_failed_read_of_the_store_does_not_end_the_wait(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = asked(store)
    await asyncio.to_thread(later, store, gate.question_id, "answer")
    real, failures = store.load_many, []

    def flaky(ids: list[UUID]) -> dict[UUID, Any]:
        if len(failures) < 2:
            failures.append(ids)
            raise ConnectionError("the database went away for a moment")
        return real(ids)

    monkeypatch.setattr(store, "load_many", flaky)

    async with checking(store, check_every_s=0.05) as answers:
        outcome = await asyncio.wait_for(wait_for(answers, gate), 3)

    assert outcome == [["Hi"]] and len(failures) == 2
