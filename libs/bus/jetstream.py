"""The EVENTS stream: declared the same way by every process that touches it, its tail, and
following it from now on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, NamedTuple

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from contracts.subjects import EVENTS_STREAM, EVENTS_SUBJECTS

log = logging.getLogger(__name__)

# Long enough to cover a relay restart; the relay also resumes from the stream's last msg id.
DUPLICATE_WINDOW_S = 600.0


def events_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        name=EVENTS_STREAM,
        subjects=[EVENTS_SUBJECTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_S,
        num_replicas=replicas,
    )


async def ensure_events_stream(js: JetStreamContext, replicas: int = 1) -> None:
    config = events_stream_config(replicas)
    try:
        await js.stream_info(EVENTS_STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


class Tail(NamedTuple):
    """Where the stream ends: its own last sequence, and the event `seq` of its last message."""

    stream_seq: int
    event_seq: int


async def stream_tail(js: JetStreamContext) -> Tail:
    info = await js.stream_info(EVENTS_STREAM)
    last, first = info.state.last_seq, info.state.first_seq
    # After a purge the stream keeps its last sequence but holds no message (event seq 0). A
    # message that is not an event (something else published to `events.>`) is passed over:
    # the relay resumes after the last event the stream holds.
    for seq in range(last, max(first, 1) - 1, -1) if info.state.messages else ():
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq=seq)
        except NotFoundError:
            continue  # deleted on its own
        try:
            # From the envelope, not the `Nats-Msg-Id`: a re-published event has a recovery id.
            return Tail(last, msgspec.json.decode(msg.data or b"", type=_Seq).seq)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("EVENTS stream message %d is not an event; passing over it", seq)
    return Tail(last, 0)


class _Seq(msgspec.Struct):
    seq: Annotated[int, msgspec.Meta(gt=0)]


async def follow_from_now(
    js: JetStreamContext, subject: str, cb: Callable[[Msg], Awaitable[None]]
) -> JetStreamContext.PushSubscription:
    """Hands `cb` each message of the EVENTS stream on `subject` published from now on, in order
    (an ordered consumer, re-created by nats-py after a reconnect).

    nats-py re-creates an ordered consumer from the last stream sequence it delivered, which is 0
    until one arrives: after a reset before any message it would replay the whole stream. So
    anything at or below where it started is not news, and is passed over. Returns the
    subscription, for a follower that stops before its process does."""
    started_after = (await js.stream_info(EVENTS_STREAM)).state.last_seq

    async def on_message(msg: Msg) -> None:
        if msg.metadata.sequence.stream > started_after:
            await cb(msg)

    return await js.subscribe(
        subject,
        stream=EVENTS_STREAM,
        ordered_consumer=True,
        deliver_policy=DeliverPolicy.NEW,
        cb=on_message,
        pending_msgs_limit=1_000_000,
        # If this process dies without unsubscribing, the server removes the consumer itself.
        inactive_threshold=60.0,
    )
