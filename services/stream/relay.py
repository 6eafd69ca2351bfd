"""The outbox relay: follows the notification log in order and publishes to JetStream.

Every publish carries `Nats-Expected-Last-Sequence`: the stream stores a message only when it
directly follows the one the relay published before it. So the stream holds the log in seq
order or refuses: a batch pipelined in one round trip is stored up to its first refusal and
never past it, and a relay that lost its lock (its PostgreSQL session died) but still publishes
is refused rather than interleaved. (Only a message from something else on `events.>` can upset
that order; then events may arrive out of order, but none is lost.) `Nats-Msg-Id` is the `seq`, so a
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
from nats.js import JetStreamContext
from nats.js.api import Header
from nats.js.errors import NotFoundError

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM, event_subject
from libs.bus.jetstream import stream_tail
from libs.bus.publisher import WRONG_LAST_SEQUENCE, PubAck, Publisher, PublishRefused
from libs.eventstore.listen import Wakeups
from libs.eventstore.store import EventStore
from libs.observability.metrics import EVENTS_RELAYED, RELAY_POSITION

log = logging.getLogger(__name__)

BATCH = 1000
ACK_TIMEOUT_S = 30.0
# How often the relay, waiting for a batch's answers, looks whether the connection was made again.
RECONNECT_CHECK_S = 0.25
_encoder = msgspec.json.Encoder()


async def publish_after(
    publisher: Publisher, events: list[EventEnvelope], stream_seq: int, msg_id: Callable[[EventEnvelope], str]
) -> list[PubAck | BaseException]:
    """Publishes `events` as the messages after stream sequence `stream_seq`, in one round trip.

    Returns each publish's ack or error, in order: once one is refused or deduplicated, the
    ones after it are refused too (their expected last sequence no longer holds)."""
    reconnects = publisher.reconnects
    futures = [
        await publisher.publish(
            event_subject(e.workspace_id, e.type),
            # Whole: the store refuses an event larger than `MAX_EVENT_BYTES`, far below a message.
            _encoder.encode(e),
            {
                "Nats-Msg-Id": msg_id(e),
                Header.EXPECTED_STREAM: EVENTS_STREAM,
                Header.EXPECTED_LAST_SEQUENCE: str(stream_seq + i),
            },
        )
        for i, e in enumerate(events)
    ]
    # An answer lost to a reconnect never comes: the relay stops waiting as soon as the
    # connection has been made again (NATS restarted, say), or at the latest after ACK_TIMEOUT_S,
    # and the leader restarts it; it resumes after the stream's tail.
    answers = asyncio.gather(*futures, return_exceptions=True)
    async with asyncio.timeout(ACK_TIMEOUT_S):
        while True:
            done, _ = await asyncio.wait({answers}, timeout=RECONNECT_CHECK_S)
            if done:
                return list(answers.result())
            if publisher.reconnects != reconnects:
                for future in futures:  # the gather then ends with their cancellations, read here
                    future.cancel()
                await answers
                raise ConnectionError("the connection to NATS was made again: the batch's answers are lost")


async def still_held(js: JetStreamContext, stream_seq: int, msg_id: str) -> bool:
    """Whether the stream still holds the message a publish was deduplicated against (a former
    leader published it, say). It may have lost it, its tail or all of it, while the id is still
    in its duplicate window: the message is gone, or even another one holds its sequence since.
    A duplicate is rare (a failover, a recovery), so the look-up costs the hot path nothing."""
    try:
        msg = await js.get_msg(EVENTS_STREAM, seq=stream_seq)
    except NotFoundError:
        return False
    return (msg.headers or {}).get("Nats-Msg-Id") == msg_id


async def relay_forever(store: EventStore, nc: NatsClient, wakeups: Wakeups, progress: dict[str, int]) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    try:
        await _relay(store, nc, publisher, wakeups, progress)
    finally:
        await publisher.stop()


async def _relay(
    store: EventStore, nc: NatsClient, publisher: Publisher, wakeups: Wakeups, progress: dict[str, int]
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
        done = 0
        # A duplicate counts as stored only while its original is in the stream: taken as stored
        # when lost (a lost tail), it would let the newer events after it go out in its place.
        for event, result in zip(events, results, strict=True):
            if isinstance(result, PubAck) and not result.duplicate:
                stream_seq = result.seq
            elif not (isinstance(result, PubAck) and await still_held(js, result.seq, msg_id(event))):
                break
            done += 1
        if done:
            position = progress["position"] = events[done - 1].seq
            EVENTS_RELAYED.inc(done)
            RELAY_POSITION.set(position)
        if done == len(events):
            if len(events) < BATCH:
                # The whole log as of that read: a later commit's NOTIFY wakes the relay.
                await wakeups.wait(timeout=1.0)
            continue
        refused, result = events[done], results[done]
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
        if any(isinstance(r, PubAck) and not r.duplicate for r in results[done + 1 :]):
            # Only another publisher's message on the stream can make a later publish fit.
            log.error("something else publishes to the EVENTS stream: events after seq %d went out of order", position)
        # The stream did not store `refused` in its place: go on from where it really ends.
        if not isinstance(result, PubAck) and not (
            isinstance(result, PublishRefused) and result.err_code == WRONG_LAST_SEQUENCE
        ):
            # Refused for what it is (no stream, too large): the leader restarts the relay after
            # a pause rather than spin on it.
            raise result
        known = stream_seq
        stream_seq, tail = await stream_tail(js)
        if isinstance(result, PubAck):
            recover_through, epoch = await asyncio.to_thread(store.head), time.time_ns()
            log.warning("the stream lost events from seq %d; re-publishing up to seq %d", refused.seq, recover_through)
        if stream_seq < known and tail < position:
            # The stream went back (recreated, or restored from an older state): what it lost
            # goes out again. Otherwise it only moved on (a former leader's or another
            # publisher's messages): the relay goes on from its own position, and the events
            # already there come back as duplicates it passes over.
            log.warning("the stream ends at seq %d, not %d as relayed: resuming after it", tail, position)
            position = progress["position"] = tail
