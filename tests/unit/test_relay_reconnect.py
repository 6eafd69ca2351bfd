"""The relay stops waiting for a batch's answers once the connection to NATS is made again
(the answers were lost with the old one), instead of waiting out ACK_TIMEOUT_S."""

from __future__ import annotations

import asyncio
import time

import pytest

from contracts.events import EventEnvelope
from libs.bus.publisher import PubAck
from services.stream import relay


class LostAnswers:
    """A publisher whose answers never come: the server went away with them."""

    max_payload = 8 * 1024 * 1024

    def __init__(self) -> None:
        self.reconnects = 0
        self.sent: list[asyncio.Future[PubAck]] = []

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[PubAck]:
        self.sent.append(asyncio.get_running_loop().create_future())
        return self.sent[-1]


def event(seq: int) -> EventEnvelope:
    return EventEnvelope(
        seq=seq, type="task.submitted", workspace_id="default", aggregate_id="t", version=1, occurred_at=0, payload={}
    )


async def test_a_reconnect_ends_the_wait_for_lost_answers_at_once() -> None:
    publisher = LostAnswers()

    async def reconnect_soon() -> None:
        await asyncio.sleep(0.2)
        publisher.reconnects += 1

    reconnecting = asyncio.create_task(reconnect_soon())
    started = time.monotonic()
    with pytest.raises(ConnectionError, match="made again"):
        await relay.publish_after(publisher, [event(1), event(2)], 0, lambda e: str(e.seq))  # type: ignore[arg-type]

    assert time.monotonic() - started < relay.ACK_TIMEOUT_S / 10
    assert all(f.cancelled() for f in publisher.sent), "nothing waits on the lost answers"
    await reconnecting


async def test_answers_that_come_are_returned_in_order() -> None:
    publisher = LostAnswers()

    async def answer_soon() -> None:
        await asyncio.sleep(0.3)  # past a reconnect check or two
        for i, future in enumerate(publisher.sent, start=1):
            future.set_result(PubAck("EVENTS", i, False))

    answering = asyncio.create_task(answer_soon())
    acks = await relay.publish_after(publisher, [event(1), event(2)], 0, lambda e: str(e.seq))  # type: ignore[arg-type]

    assert acks == [PubAck("EVENTS", 1, False), PubAck("EVENTS", 2, False)]
    await answering
