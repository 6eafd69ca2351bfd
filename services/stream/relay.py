"""The outbox relay: follows the notification log in order and publishes to JetStream.

`Nats-Msg-Id` is the event's `seq`, so a re-publish after a crash is deduplicated; on start
it resumes after the stream's last message, so anything the bus lost is re-published from
PostgreSQL, the source of truth. Only the replica holding the advisory lock relays.
"""

from __future__ import annotations

import asyncio
import logging

import msgspec
from nats.js import JetStreamContext

from contracts.subjects import EVENTS_STREAM, event_subject
from libs.bus.jetstream import last_relayed_seq
from libs.eventstore.listen import Listener
from libs.eventstore.store import EventStore
from libs.observability.metrics import EVENTS_RELAYED, RELAY_POSITION

log = logging.getLogger(__name__)

BATCH = 1000
_encoder = msgspec.json.Encoder()


async def relay_forever(store: EventStore, js: JetStreamContext, wakeups: Listener, progress: dict[str, int]) -> None:
    position = progress["position"] = await last_relayed_seq(js)
    log.info("relay resuming after seq %d", position)
    while True:
        events = await asyncio.to_thread(store.read, position, BATCH)
        if not events:
            await wakeups.wait(timeout=1.0)
            continue
        # Publish the whole batch before awaiting any ack: one round trip per batch.
        futures = [
            await js.publish_async(
                event_subject(e.workspace_id, e.type),
                _encoder.encode(e),
                headers={"Nats-Msg-Id": str(e.seq)},
                stream=EVENTS_STREAM,
            )
            for e in events
        ]
        await asyncio.gather(*futures)
        position = progress["position"] = events[-1].seq
        EVENTS_RELAYED.inc(len(events))
        RELAY_POSITION.set(position)
