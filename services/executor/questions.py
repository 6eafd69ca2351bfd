"""Agents' questions to a human, seen from the run that asks: the question goes to the owner
of gates (review) as a command; the answer, or the news that it expired, comes back on the bus,
and the event store backs the bus up.

Each executor follows new question events with an ordered consumer from its start, and
hands each answer to the run waiting for it. A run whose executor restarts is interrupted (and
retried) anyway, so nothing older is needed. Now and then the executor also reads the gates of
every question its runs wait on, in one read: what the bus did not deliver is found there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext

from contracts.commands import AskQuestionCommand, CommandReply
from contracts.events import EventEnvelope, typed
from contracts.payloads.question_gate import QuestionGateAnswered, QuestionGateExpired
from contracts.questions import QuestionItem
from contracts.subjects import ASK_QUESTION
from libs.bus.jetstream import follow_from_now
from libs.domain.gate import QuestionGate, question_gate_id
from libs.eventstore.store import EventStore

log = logging.getLogger(__name__)

QUESTION_EVENTS = "events.*.question_gate.>"
# How long past its expiry a run waits for review to record its question's outcome.
EXPIRY_GRACE_S = 60.0
FAILED_CHECK_PAUSE_S = 1.0
# The question events that end a wait; the others (`question_gate.asked`) are not decoded.
SETTLING = frozenset({"question_gate.answered", "question_gate.expired"})
_decoder = msgspec.json.Decoder(EventEnvelope)


class AskFailed(Exception):
    """The question was not recorded, or (`timed_out`) no answer came to say whether it was."""

    def __init__(self, reason: str, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.timed_out = timed_out


Outcome = list[list[str]] | None  # the answers, one list per question; None: it expired


class Answers:
    """The questions this process's runs wait on, and how each wait ends.

    The bus brings a question's outcome at once. The event store backs the bus up: every
    `check_every_s` one read of every waiting question's gate finds an outcome the bus did not
    deliver (lost to a reconnect, say), and a question still open `grace_s` after its expiry
    (review did not record one) counts as expired, so a run's wait is bounded by its question's
    life. A failed read is tried again at the next check: the database being away for a moment
    must not end the runs.
    """

    def __init__(self, store: EventStore, check_every_s: float, grace_s: float = EXPIRY_GRACE_S) -> None:
        self.store = store
        self.check_every_s = check_every_s
        self.grace_s = grace_s
        self.waiting: dict[str, asyncio.Future[Outcome]] = {}
        self.deadlines: dict[str, float] = {}  # question id -> when its wait ends at the latest
        self._soon = asyncio.Event()  # a deadline was set: the next check may be due sooner
        self._checks: asyncio.Task[None] | None = None

    async def start(self, js: JetStreamContext) -> None:
        # From now on: a run asks only after this process started, and answers come later.
        await follow_from_now(js, QUESTION_EVENTS, self._on_message)
        self.start_checks()

    def start_checks(self) -> None:
        self._checks = asyncio.create_task(self._check_forever(), name="question-checks")

    async def stop(self) -> None:
        if self._checks is not None:
            self._checks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checks

    async def _on_message(self, msg: Msg) -> None:
        if not self.waiting:
            return  # no run of this process waits for an answer
        envelope = _decoder.decode(msg.data)
        if envelope.type not in SETTLING:
            return
        p = typed(envelope).payload
        if isinstance(p, QuestionGateAnswered):
            self._settle(p.question_id, p.answers)
        elif isinstance(p, QuestionGateExpired):
            self._settle(p.question_id, None)

    def expect(self, question_id: str) -> None:
        """Before the question is asked, so an outcome that comes at once is not missed."""
        self.waiting[question_id] = asyncio.get_running_loop().create_future()

    async def outcome(self, question_id: str, expires_at: int | None) -> Outcome:
        """The expected question's outcome. An expiry the ask's reply did not carry (from a
        review replica older than that field) is taken from the gate at the next check."""
        if expires_at is not None:
            self.deadlines[question_id] = expires_at / 1000 + self.grace_s
            self._soon.set()
        return await asyncio.shield(self.waiting[question_id])

    def forget(self, question_id: str) -> None:
        """However the wait ended (an answer, an error, a cancel)."""
        self.waiting.pop(question_id, None)
        self.deadlines.pop(question_id, None)

    def _settle(self, question_id: str, outcome: Outcome) -> None:
        future = self.waiting.get(question_id)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def _check_forever(self) -> None:
        next_check = time.time() + self.check_every_s
        while True:
            self._soon.clear()
            wait = min(next_check, self._first_deadline()) - time.time()
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._soon.wait()
                    continue  # a new deadline: work out the wait again
            try:
                await self.check()
            except Exception:  # a bug here must not leave every later wait to the bus alone
                log.exception("checking the waiting questions failed")
                # A deadline already past would bring the next try at once: not in a tight loop.
                await asyncio.sleep(min(self.check_every_s, FAILED_CHECK_PAUSE_S))
            next_check = time.time() + self.check_every_s

    def _first_deadline(self) -> float:
        waiting = self.waiting
        return min((d for q, d in self.deadlines.items() if q in waiting and not waiting[q].done()), default=math.inf)

    async def check(self) -> None:
        """One read of every waiting question's gate; ends the waits it can."""
        open_ = [q for q, future in self.waiting.items() if not future.done()]
        if not open_:
            return
        ids = {question_gate_id(q): q for q in open_}
        try:
            gates = await asyncio.to_thread(self.store.load_many, list(ids))
        except Exception:
            log.warning("could not read %d questions from the event store; trying again", len(ids), exc_info=True)
            gates = {}
        now = time.time()
        for gate_id, question_id in ids.items():
            gate = gates.get(gate_id)
            if isinstance(gate, QuestionGate):
                if gate.status != "open":
                    self._settle(question_id, gate.answers if gate.status == "answered" else None)
                    continue
                if question_id in self.waiting:
                    self.deadlines.setdefault(question_id, gate.expires_at / 1000 + self.grace_s)
            if now >= self.deadlines.get(question_id, math.inf):
                log.warning("question %s is still open past its expiry; the run goes on as if it expired", question_id)
                self._settle(question_id, None)


async def ask(nc: NatsClient, command: AskQuestionCommand, timeout_s: float) -> int | None:
    """Has the question recorded by its owner and returns when it expires (epoch ms; None from
    a review replica older than that answer); AskFailed with the reason when it is not recorded."""
    try:
        raw = await nc.request(ASK_QUESTION, msgspec.json.encode(command), timeout=timeout_s)
    except NoRespondersError:
        raise AskFailed("the review service did not answer; the question was not asked") from None
    except NatsTimeout:
        # Review may have recorded it and answered too late: the caller looks in the store.
        raise AskFailed("the review service did not answer; the question was not asked", timed_out=True) from None
    reply = msgspec.json.decode(raw.data, type=CommandReply)
    if reply.error is not None:
        raise AskFailed(reply.error.message)
    return reply.expires_at


async def recorded_expiry(store: EventStore, question_id: str) -> int | None:
    """When the question expires, if review recorded it (its reply may have come too late);
    None when it is not on record, or the store cannot say."""
    gate_id = question_gate_id(question_id)
    try:
        gate = await asyncio.to_thread(store.load, gate_id)
    except Exception:
        log.warning("could not read question %s from the event store", question_id, exc_info=True)
        return None
    return gate.expires_at if isinstance(gate, QuestionGate) else None


def answer_text(questions: list[QuestionItem], answers: list[list[str]]) -> str:
    lines = ["A human answered:"]
    for item, picked in zip(questions, answers, strict=True):
        lines.append(f"- {item.header or item.question}: {', '.join(picked)}")
    return "\n".join(lines)
