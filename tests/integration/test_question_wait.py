"""A run waiting for a human: the bus brings the outcome, the event store backs it up, and the
wait ends with the question's life (`services/executor/questions.outcome`)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any
from uuid import UUID

import pytest

from contracts.events import EventEnvelope
from libs.domain.gate import QuestionGate, question_gate_id
from libs.eventstore.store import EventStore
from services.executor.questions import outcome

pytestmark = pytest.mark.integration

WS = "ws-questions"
QUESTION = {"question": "Which greeting?", "header": "Greeting", "options": [{"label": "Hello"}, {"label": "Hi"}]}


def asked(store: EventStore, expires_in_s: float = 3600) -> QuestionGate:
    question_id = f"que_{uuid.uuid4().hex}"
    gate = QuestionGate.ask(
        WS,
        question_id,
        "task-1",
        "run-1",
        [QUESTION],
        {"messageID": "m", "callID": "c"},
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


def never() -> asyncio.Future[EventEnvelope]:
    """The bus's future for a message that never comes."""
    return asyncio.get_running_loop().create_future()


async def test_the_answer_on_the_bus_ends_the_wait_at_once(store: EventStore) -> None:
    gate = asked(store)
    answer = never()
    waiting = asyncio.create_task(outcome(answer, gate.question_id, gate.expires_at, store, check_every_s=60))
    await asyncio.sleep(0.05)
    assert not waiting.done()

    answer.set_result(
        EventEnvelope(
            seq=1,
            type="question_gate.answered",
            workspace_id=WS,
            aggregate_id=str(gate.id),
            version=2,
            occurred_at=0,
            payload={"question_id": gate.question_id, "answers": [["Hello"]]},
        )
    )

    assert await asyncio.wait_for(waiting, 1) == [["Hello"]]


async def test_an_answer_the_bus_lost_is_found_in_the_event_store(store: EventStore) -> None:
    gate = asked(store)
    waiting = asyncio.create_task(outcome(never(), gate.question_id, gate.expires_at, store, check_every_s=0.1))
    await asyncio.sleep(0.25)
    assert not waiting.done(), "still open: the run keeps waiting"

    await asyncio.to_thread(later, store, gate.question_id, "answer")

    assert await asyncio.wait_for(waiting, 2) == [["Hi"]]


async def test_an_expiry_the_bus_lost_is_found_in_the_event_store(store: EventStore) -> None:
    gate = asked(store)
    await asyncio.to_thread(later, store, gate.question_id, "expire")

    assert await asyncio.wait_for(outcome(never(), gate.question_id, gate.expires_at, store, 0.1), 2) is None


async def test_a_question_nobody_closes_ends_the_wait_after_its_expiry_and_the_grace(store: EventStore) -> None:
    started = time.monotonic()
    gate = asked(store, expires_in_s=0.2)

    answers = await asyncio.wait_for(
        outcome(never(), gate.question_id, gate.expires_at, store, check_every_s=60, grace_s=0.3), 5
    )

    assert answers is None
    # Not before its expiry and the grace, though the store was not read in between.
    assert 0.5 <= time.monotonic() - started < 3


async def test_an_expiry_the_ask_did_not_carry_is_taken_from_the_question(store: EventStore) -> None:
    # A review replica older than the expiry in its reply: the gate it saved says when.
    gate = asked(store, expires_in_s=0.2)

    answers = await asyncio.wait_for(outcome(never(), gate.question_id, None, store, 0.1, grace_s=0.3), 5)

    assert answers is None
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

    answers = await asyncio.wait_for(outcome(never(), gate.question_id, gate.expires_at, store, 0.05), 3)

    assert answers == [["Hi"]] and len(failures) == 2
