"""The outbox relay: follows the notification log in order and publishes to JetStream.

`Nats-Msg-Id` is the event's `seq`, so a re-publish after a crash is deduplicated; on start
it resumes after the stream's last message, so anything the bus lost is re-published from
PostgreSQL, the source of truth. Only the replica holding the advisory lock relays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.api import PubAck

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM, event_subject
from libs.bus.jetstream import last_relayed_seq
from libs.eventstore.listen import Listener
from libs.eventstore.store import EventStore
from libs.observability.metrics import EVENTS_RELAYED, RELAY_POSITION

log = logging.getLogger(__name__)

BATCH = 1000
ACK_TIMEOUT_S = 30.0
_encoder = msgspec.json.Encoder()


async def _publish(
    js: JetStreamContext, events: list[EventEnvelope], msg_id: Callable[[EventEnvelope], str]
) -> list[PubAck]:
    # The whole batch goes out before any ack is awaited: one round trip per batch.
    futures = [
        await js.publish_async(
            event_subject(e.workspace_id, e.type),
            _encoder.encode(e),
            headers={"Nats-Msg-Id": msg_id(e)},
            stream=EVENTS_STREAM,
        )
        for e in events
    ]
    # nats-py never fails these futures on a reconnect: without a bound the relay could wait
    # forever. On timeout the leader restarts the relay, which resumes after the stream's
    # last stored message.
    async with asyncio.timeout(ACK_TIMEOUT_S):
        return list(await asyncio.gather(*futures))


async def _recover_lost(js: JetStreamContext, duplicates: list[EventEnvelope]) -> None:
    """A duplicate ack means either another relay published the event (it is in the stream) or
    the stream lost it inside the dedupe window (purged, or restored from an older state). In the
    second case the seq alone would be refused again, so it is re-published under a recovery id:
    the log is the source of truth and nothing it holds may go missing on the bus."""
    stored = await last_relayed_seq(js)
    lost = [e for e in duplicates if e.seq > stored]
    if lost:
        log.warning("the stream lost %d events (seq %d..%d); re-publishing them", len(lost), lost[0].seq, lost[-1].seq)
        epoch = int(time.time())
        await _publish(js, lost, lambda e: f"{e.seq}.recovered.{epoch}")


async def relay_forever(store: EventStore, js: JetStreamContext, wakeups: Listener, progress: dict[str, int]) -> None:
    position = progress["position"] = await last_relayed_seq(js)
    log.info("relay resuming after seq %d", position)
    while True:
        events = await asyncio.to_thread(store.read, position, BATCH)
        if not events:
            await wakeups.wait(timeout=1.0)
            continue
        acks = await _publish(js, events, lambda e: str(e.seq))
        if any(ack.duplicate for ack in acks):
            await _recover_lost(js, [e for e, ack in zip(events, acks, strict=True) if ack.duplicate])
        position = progress["position"] = events[-1].seq
        EVENTS_RELAYED.inc(len(events))
        RELAY_POSITION.set(position)
