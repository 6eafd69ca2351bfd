"""Agents' questions to a human, seen from the run that asks: the question goes to the owner
of gates (review) as a command; the answer, or the news that it expired, comes back on the bus.

Each executor follows new question events with an ordered consumer from its start, and
hands each answer to the run waiting for it. A run whose executor restarts is interrupted (and
retried) anyway, so nothing older is needed.
"""

from __future__ import annotations

import asyncio
import logging

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

log = logging.getLogger(__name__)

QUESTION_EVENTS = "events.*.question_gate.>"
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


async def ask(nc: NatsClient, command: AskQuestionCommand, timeout_s: float) -> None:
    """Has the question recorded by its owner; AskFailed with the reason when it is not."""
    try:
        raw = await nc.request(ASK_QUESTION, msgspec.json.encode(command), timeout=timeout_s)
    except (NatsTimeout, NoRespondersError):
        raise AskFailed("the review service did not answer; the question was not asked") from None
    reply = msgspec.json.decode(raw.data, type=CommandReply)
    if reply.error is not None:
        raise AskFailed(reply.error.message)


def answer_text(questions: list[QuestionItem], answers: list[list[str]]) -> str:
    lines = ["A human answered:"]
    for item, picked in zip(questions, answers, strict=True):
        lines.append(f"- {item.header or item.question}: {', '.join(picked)}")
    return "\n".join(lines)
