"""Agents' questions to a human, seen from the run that asks: the question goes to the owner
of gates (review) as a command; the answer, or the news that it expired, comes back on the bus,
and the event store backs the bus up.

Each executor follows new question events with an ordered consumer from its start, and
hands each answer to the run waiting for it. A run whose executor restarts is interrupted (and
retried) anyway, so nothing older is needed. A waiting run also reads its question's gate from
the store now and then (`outcome`): what the bus did not deliver is found there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from contracts.commands import AskQuestionCommand, CommandReply
from contracts.events import EventEnvelope
from contracts.questions import QuestionItem
from contracts.subjects import ASK_QUESTION
from libs.bus.jetstream import follow_from_now
from libs.domain.gate import QuestionGate, question_gate_id
from libs.eventstore.store import EventStore

log = logging.getLogger(__name__)

QUESTION_EVENTS = "events.*.question_gate.>"
# How long past its expiry a run waits for review to record its question's outcome.
EXPIRY_GRACE_S = 60.0
_decoder = msgspec.json.Decoder(EventEnvelope)


class AskFailed(Exception):
    pass


class Answers:
    """Futures of the questions this process's runs wait on, resolved by the bus."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[EventEnvelope]] = {}

    async def start(self, js: JetStreamContext) -> None:
        # From now on: a run asks only after this process started, and answers come later.
        await follow_from_now(js, QUESTION_EVENTS, self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        if not self.waiting:
            return  # no run of this process waits for an answer
        event = _decoder.decode(msg.data)
        if event.type not in ("question_gate.answered", "question_gate.expired"):
            return
        future = self.waiting.pop(event.payload["question_id"], None)
        if future is not None and not future.done():
            future.set_result(event)

    def expect(self, question_id: str) -> asyncio.Future[EventEnvelope]:
        future: asyncio.Future[EventEnvelope] = asyncio.get_running_loop().create_future()
        self.waiting[question_id] = future
        return future

    def forget(self, question_id: str) -> None:
        self.waiting.pop(question_id, None)


async def ask(nc: NatsClient, command: AskQuestionCommand, timeout_s: float) -> int | None:
    """Has the question recorded by its owner and returns when it expires (epoch ms; None from
    a review replica older than that answer); AskFailed with the reason when it is not recorded."""
    try:
        raw = await nc.request(ASK_QUESTION, msgspec.json.encode(command), timeout=timeout_s)
    except (NatsTimeout, NoRespondersError):
        raise AskFailed("the review service did not answer; the question was not asked") from None
    reply = msgspec.json.decode(raw.data, type=CommandReply)
    if reply.error is not None:
        raise AskFailed(reply.error.message)
    return reply.expires_at


async def outcome(
    answer: asyncio.Future[EventEnvelope],
    question_id: str,
    expires_at: int | None,
    store: EventStore,
    check_every_s: float,
    grace_s: float = EXPIRY_GRACE_S,
) -> list[list[str]] | None:
    """The answers to a question, or None once it expired.

    The bus brings the outcome at once (`answer`). Every `check_every_s` the question's gate is
    also read from the event store, so an outcome the bus did not deliver (lost to a reconnect,
    say) is found there; and a question still open `grace_s` after its expiry (review did not
    record one) counts as expired: the run's wait is bounded by its question's life. An expiry
    the ask's reply did not carry is taken from the gate. A failed read is tried again at the
    next check: the database being away for a moment must not end the run.
    """
    gate_id = question_gate_id(question_id)
    deadline = None if expires_at is None else expires_at / 1000 + grace_s
    while True:
        wait = check_every_s if deadline is None else max(0.0, min(check_every_s, deadline - time.time()))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                event = await asyncio.shield(answer)
            return event.payload["answers"] if event.type == "question_gate.answered" else None
        try:
            gate = (await asyncio.to_thread(store.load_many, [gate_id])).get(gate_id)
        except Exception:
            log.warning("could not read question %s from the event store; trying again", question_id, exc_info=True)
            gate = None
        if isinstance(gate, QuestionGate):
            if gate.status != "open":
                return gate.answers if gate.status == "answered" else None
            if deadline is None:
                deadline = gate.expires_at / 1000 + grace_s
        if deadline is not None and time.time() >= deadline:
            log.warning("question %s is still open past its expiry; the run goes on as if it expired", question_id)
            return None


def answer_text(questions: list[QuestionItem], answers: list[list[str]]) -> str:
    lines = ["A human answered:"]
    for item, picked in zip(questions, answers, strict=True):
        lines.append(f"- {item.header or item.question}: {', '.join(picked)}")
    return "\n".join(lines)
