"""The outbox relay: follows the notification log in order and publishes to JetStream.

Every publish carries `Nats-Expected-Last-Sequence`: the stream stores a message only when it
directly follows the one the relay published before it. So the stream holds the log in seq
order or refuses, whatever happens around it: a batch pipelined in one round trip is stored up
to its first refusal and never past it, and a relay that lost its lock (its PostgreSQL session
died) but still publishes is refused rather than interleaved. `Nats-Msg-Id` is the `seq`, so a
re-publish is deduplicated too. On start, and after any refusal, the relay resumes after the
stream's last message: anything the bus lost is re-published from PostgreSQL, the source of
truth. Only the replica holding the advisory lock relays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
from nats.aio.client import Client as NatsClient
from nats.js.api import Header

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM, event_subject
from libs.bus.jetstream import stream_tail
from libs.bus.publisher import PubAck, Publisher
from libs.eventstore.listen import Listener
from libs.eventstore.store import EventStore
from libs.observability.metrics import EVENTS_RELAYED, RELAY_POSITION

log = logging.getLogger(__name__)

BATCH = 1000
ACK_TIMEOUT_S = 30.0
_encoder = msgspec.json.Encoder()


async def publish_after(
    publisher: Publisher, events: list[EventEnvelope], stream_seq: int, msg_id: Callable[[EventEnvelope], str]
) -> list[PubAck | BaseException]:
    """Publishes `events` as the messages after stream sequence `stream_seq`, in one round trip.

    Returns each publish's ack or error, in order: once one is refused or deduplicated, the
    ones after it are refused too (their expected last sequence no longer holds)."""
    futures = [
        await publisher.publish(
            event_subject(e.workspace_id, e.type),
            _encoder.encode(e),
            {
                "Nats-Msg-Id": msg_id(e),
                Header.EXPECTED_STREAM: EVENTS_STREAM,
                Header.EXPECTED_LAST_SEQUENCE: str(stream_seq + i),
            },
        )
        for i, e in enumerate(events)
    ]
    # An answer lost to a reconnect never comes: without a bound the relay could wait forever.
    # On timeout the leader restarts the relay, which resumes after the stream's tail.
    async with asyncio.timeout(ACK_TIMEOUT_S):
        return list(await asyncio.gather(*futures, return_exceptions=True))


async def relay_forever(store: EventStore, nc: NatsClient, wakeups: Listener, progress: dict[str, int]) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    try:
        await _relay(store, nc, publisher, wakeups, progress)
    finally:
        await publisher.stop()


async def _relay(
    store: EventStore, nc: NatsClient, publisher: Publisher, wakeups: Listener, progress: dict[str, int]
) -> None:
    js = nc.jetstream()
    stream_seq, position = await stream_tail(js)
    progress["position"] = position
    log.info("relay resuming after seq %d", position)
    # Events up to this seq go out under recovery ids: the stream lost them while their ids
    # are still in its duplicate window, where the `seq` alone would be dropped again.
    recover_through, epoch = 0, 0

    def msg_id(e: EventEnvelope) -> str:
        return f"{e.seq}.recovered.{epoch}" if e.seq <= recover_through else str(e.seq)

    while True:
        events = await asyncio.to_thread(store.read, position, BATCH)
        if not events:
            await wakeups.wait(timeout=1.0)
            continue
        results = await publish_after(publisher, events, stream_seq, msg_id)
        stored = 0
        for result in results:
            if isinstance(result, BaseException) or result.duplicate:
                break
            stored += 1
            stream_seq = result.seq
        if stored:
            position = progress["position"] = events[stored - 1].seq
            EVENTS_RELAYED.inc(stored)
            RELAY_POSITION.set(position)
        if stored == len(events):
            continue
        refused, result = events[stored], results[stored]
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
        # The stream did not store `refused`: find out where it really ends, then go on from there.
        stream_seq, tail = await stream_tail(js)
        if isinstance(result, PubAck) and refused.seq > tail:
            # A duplicate the stream does not hold: it lost the event inside the duplicate window.
            recover_through, epoch = await asyncio.to_thread(store.head), time.time_ns()
            log.warning("the stream lost events from seq %d; re-publishing up to seq %d", refused.seq, recover_through)
        elif tail != position:
            log.warning("the stream ends at seq %d, not %d as relayed: resuming after it", tail, position)
        elif isinstance(result, Exception):
            # Refused though it was in its place (too large, no stream): the leader restarts the
            # relay after a pause rather than spin on it.
            raise result
        position = progress["position"] = tail
