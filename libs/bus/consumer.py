"""Durable JetStream consumers that handle events in batches, effectively once.

nats-py's `fetch(n)` waits for all `n` messages (or its timeout) once the first one has
arrived on a lingering pull, and FastStream's batch subscriber waits to fill its batch: both
put a timeout on every hop of a task. So this loop keeps one pull request of up to `batch`
messages outstanding on the consumer (the JetStream pull protocol: a request to
`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>` with a reply inbox), and hands over whatever
has arrived the moment anything has: low latency when idle, large batches under load.
FastStream stays in charge of commands.

Each batch: drop what this consumer already handled (its tracking rows), let the handler
change aggregates, then append their events together with the tracking rows in one
transaction, then ack. A crash before the commit redelivers; after it, the rows make the
redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM
from libs.eventstore.recorder import ConsumerTracking
from libs.eventstore.store import EventStore
from libs.observability.metrics import CONSUMER_BATCH, CONSUMER_ERRORS, EVENTS_HANDLED

log = logging.getLogger(__name__)

PULL_EXPIRES_S = 5.0
# A message whose handling failed comes back after RETRY_FIRST_S, then twice as late at each
# further failure, up to RETRY_MAX_S: a database back within seconds loses seconds, and a
# message that fails for good (a bug) is tried, and logged, once a minute, not every second.
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
# A batch still being handled tells JetStream so every PROGRESS_S (an agent run can take many
# minutes); a replica that died stops doing so, and its messages come back after ACK_WAIT_S.
ACK_WAIT_S = 120
PROGRESS_S = 30.0
CONFLICT_ATTEMPTS = 5
# A consumer with no room looks again this often (and whenever one of its events is done).
ROOM_CHECK_S = 1.0

BatchHandler = Callable[[list[EventEnvelope]], Awaitable[Sequence[Aggregate]]]
_decoder = msgspec.json.Decoder(EventEnvelope)


@dataclass(frozen=True)
class InThread:
    """A synchronous handler `(events, *deps) -> aggregates`: the tracking look-up, the handler
    and the save then run as one call off the event loop, not three."""

    fn: Callable[..., Sequence[Aggregate]]
    deps: tuple[Any, ...] = ()


class TryLater(Exception):
    """An `EachAlone` handler cannot do its effect now (an outside service is rate limited or
    away): the event comes back after `delay_s`, or the consumer's retry delay when None. Not a
    failure: logged as information, not counted as an error."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


class Capacity(Protocol):
    """How many more events one replica takes on, given how many it is handling (`taken`)."""

    def room(self, taken: int) -> int: ...


@dataclass(frozen=True)
class EachAlone:
    """A handler with effects outside the store (a model call, a pull request): `fn(event)`.

    Its events are looked up in the tracking rows before it runs, so a redelivery never
    reaches it, and each event's aggregates are saved with that event's tracking row as soon
    as it is handled, so a failure anywhere else never makes an effect happen again.

    With a `capacity`, the replica asks JetStream for no more events than it has room for, so
    a busy replica leaves the rest of the work to the others instead of holding it."""

    fn: Callable[[EventEnvelope], Awaitable[Sequence[Aggregate]]]
    capacity: Capacity | None = None


@dataclass(frozen=True)
class Subscription:
    durable: str
    filter_subjects: tuple[str, ...]
    # A batch handler is pure (it only changes aggregates): a batch is saved in one transaction,
    # and a redelivery is caught by the tracking insert's conflict, then redone without it.
    handle: BatchHandler | InThread | EachAlone


class EventConsumer:
    def __init__(self, js: JetStreamContext, store: EventStore, sub: Subscription, batch: int = 256) -> None:
        self.js = js
        self.store = store
        self.sub = sub
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._finished = asyncio.Event()  # one of `_inflight` is done: there may be room again
        self._running = False

    async def start(self) -> None:
        # One durable consumer per service, shared by its replicas, over all the subjects the
        # service reacts to: one fetch loop, one batch, one transaction.
        await self.js.add_consumer(
            EVENTS_STREAM,
            config=ConsumerConfig(
                durable_name=self.sub.durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=ACK_WAIT_S,
                max_ack_pending=10_000,
                filter_subjects=list(self.sub.filter_subjects),
            ),
        )
        self._running = True
        self._task = asyncio.create_task(self._loop(), name=f"consumer:{self.sub.durable}")

    async def _start_each(self, handler: EachAlone, msgs: list[Msg]) -> None:
        """One tracking look-up for what arrived, then each message handled on its own, at once,
        with its own heartbeat: none waits unannounced behind a slow one."""
        CONSUMER_BATCH.labels(self.sub.durable).observe(len(msgs))
        decoded = await self._decoded(msgs)
        try:
            handled = await asyncio.to_thread(self.store.handled, self.sub.durable, [e.seq for _, e in decoded])
        except Exception:
            # Not knowing what is done, nothing runs (an effect must not happen twice): the batch
            # comes back, and the fetch loop, which this runs in, goes on.
            CONSUMER_ERRORS.labels(self.sub.durable, "handler").inc()
            log.exception("%s: looking up %d messages failed; redelivering them", self.sub.durable, len(decoded))
            await asyncio.gather(*(msg.nak(delay=retry_delay(msg)) for msg, _ in decoded), return_exceptions=True)
            return
        for msg, event in decoded:
            task = asyncio.create_task(self._one(handler, msg, event, event.seq in handled))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._finished.set()

    async def _room(self) -> int:
        """How many events to ask for now: the batch, or less when the handler's capacity says
        so; when there is no room, waits (for an event to be done, or ROOM_CHECK_S) and says 0."""
        handler = self.sub.handle
        capacity = handler.capacity if isinstance(handler, EachAlone) else None
        if capacity is None:
            return self.batch
        self._finished.clear()  # before looking: an event done after the look wakes the wait
        room = min(self.batch, capacity.room(len(self._inflight)))
        if room <= 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROOM_CHECK_S):
                    await self._finished.wait()
        return max(room, 0)

    async def _decoded(self, msgs: list[Msg]) -> list[tuple[Msg, EventEnvelope]]:
        """Each message with its envelope; one that is not an event (something else published
        on `events.>`) is terminated, since no redelivery could make it one."""
        decoded: list[tuple[Msg, EventEnvelope]] = []
        for msg in msgs:
            try:
                event = _decoder.decode(msg.data)
            except msgspec.DecodeError:
                log.error("%s: dropping a message that is not an event envelope", self.sub.durable)
                await msg.term()
                continue
            decoded.append((msg, event))
        return decoded

    async def stop(self) -> None:
        self._running = False
        for task in list(self._inflight):
            task.cancel()
        if self._task:
            self._task.cancel()
            # A fetch can hold the cancellation until its own timeout; unacked messages are
            # redelivered anyway, so do not wait for it.
            await asyncio.wait([self._task], timeout=1.0)

    async def _loop(self) -> None:
        nc = self.js._nc  # the JetStream context's own connection
        inbox = nc.new_inbox()
        arrived: asyncio.Queue[Msg] = asyncio.Queue()

        async def on_message(msg: Msg) -> None:
            arrived.put_nowait(msg)

        sub = await nc.subscribe(inbox, cb=on_message)
        next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{EVENTS_STREAM}.{self.sub.durable}"
        outstanding = 0
        try:
            while self._running:
                if outstanding == 0:
                    size = await self._room()
                    if size == 0:
                        continue
                    request = {"batch": size, "expires": int(PULL_EXPIRES_S * 1e9)}
                    await nc.publish(next_subject, msgspec.json.encode(request), reply=inbox)
                    outstanding = size
                try:
                    async with asyncio.timeout(PULL_EXPIRES_S + 1):
                        first = await arrived.get()
                except TimeoutError:
                    outstanding = 0  # the request is gone (server restart, lost reply): ask again
                    continue
                batch: list[Msg] = []
                for msg in _with_arrived(first, arrived, self.batch):
                    if _status(msg):
                        # 408 expired, 409 limits/leadership, 404 none: this request is over.
                        outstanding = 0
                    else:
                        batch.append(msg)
                        outstanding = max(0, outstanding - 1)
                if batch and isinstance(self.sub.handle, EachAlone):
                    await self._start_each(self.sub.handle, batch)
                elif batch:
                    await self._handle(batch)
        finally:
            await sub.unsubscribe()

    def _unhandled(self, events: list[EventEnvelope]) -> list[EventEnvelope]:
        handled = self.store.handled(self.sub.durable, [e.seq for e in events])
        return [e for e in events if e.seq not in handled]

    async def _one(self, handler: EachAlone, msg: Msg, event: EventEnvelope, done: bool) -> None:
        heartbeat = asyncio.create_task(_in_progress([msg]))
        delay: float | None = None  # None: acknowledged; else handed back for that long
        try:
            if not done:
                try:
                    await self._save_one(handler, event)
                except TryLater as later:
                    delay = later.delay_s if later.delay_s is not None else retry_delay(msg)
                    log.info("%s: seq %d again in %.0f s: %s", self.sub.durable, event.seq, delay, later)
                except Exception:
                    CONSUMER_ERRORS.labels(self.sub.durable, "handler").inc()
                    log.exception("%s: handling seq %d failed; redelivering it", self.sub.durable, event.seq)
                    delay = retry_delay(msg)
        finally:
            # Stopped first: an in-progress sent after the answer would restart its ack wait.
            heartbeat.cancel()
        with contextlib.suppress(Exception):
            await (msg.ack() if delay is None else msg.nak(delay=delay))

    def _tracking(self, events: list[EventEnvelope]) -> ConsumerTracking:
        return ConsumerTracking(self.sub.durable, [e.seq for e in events])

    def _apply_in_thread(self, handler: InThread, events: list[EventEnvelope], check: bool) -> int:
        todo = self._unhandled(events) if check else events
        if todo:
            self.store.save(handler.fn(todo, *handler.deps), self._tracking(todo))
        return len(todo)

    async def _apply(self, events: list[EventEnvelope], check: bool) -> int:
        """Handles what is new in `events` and saves the result with its tracking rows."""
        handler = self.sub.handle
        if isinstance(handler, InThread):
            return await asyncio.to_thread(self._apply_in_thread, handler, events, check)
        assert not isinstance(handler, EachAlone)
        todo = await asyncio.to_thread(self._unhandled, events) if check else events
        if todo:
            aggregates = await handler(todo)
            await asyncio.to_thread(self.store.save, aggregates, self._tracking(todo))
        return len(todo)

    async def _save_one(self, handler: EachAlone, event: EventEnvelope) -> None:
        for _ in range(CONFLICT_ATTEMPTS):
            try:
                aggregates = await handler.fn(event)
                await asyncio.to_thread(self.store.save, aggregates, self._tracking([event]))
                EVENTS_HANDLED.labels(self.sub.durable).inc()
                return
            except IntegrityError:
                CONSUMER_ERRORS.labels(self.sub.durable, "conflict").inc()
                if await asyncio.to_thread(self.store.handled, self.sub.durable, [event.seq]):
                    log.info("%s: seq %d was handled elsewhere first", self.sub.durable, event.seq)
                    return  # another replica recorded this event first: its outcome stands
                # An aggregate it changes moved meanwhile: again on fresh state. Handlers keep
                # what they paid for (a drafted plan) so that this costs nothing twice.
        raise RuntimeError(f"seq {event.seq} kept conflicting with concurrent writes")

    async def _handle(self, msgs: list[Msg]) -> None:
        CONSUMER_BATCH.labels(self.sub.durable).observe(len(msgs))
        decoded = await self._decoded(msgs)
        msgs = [msg for msg, _ in decoded]
        if not msgs:
            return
        heartbeat = asyncio.create_task(_in_progress(msgs))
        try:
            await self._handle_batch(msgs, [event for _, event in decoded])
        finally:
            heartbeat.cancel()

    async def _handle_batch(self, msgs: list[Msg], envelopes: list[EventEnvelope]) -> None:
        try:
            try:
                applied = await self._apply(envelopes, check=False)
            except IntegrityError:
                # A redelivery, or another replica committed some of these or wrote the same
                # aggregate first: once more on fresh state without what is done, then let
                # JetStream redeliver.
                applied = await self._apply(envelopes, check=True)
            EVENTS_HANDLED.labels(self.sub.durable).inc(applied)
        except IntegrityError:
            # Another replica handled some of these first: redeliver, and the tracking rows
            # will filter out what is done.
            CONSUMER_ERRORS.labels(self.sub.durable, "conflict").inc()
            log.info("%s: concurrent write, redelivering %d messages", self.sub.durable, len(msgs))
            await asyncio.gather(*(m.nak(delay=0.05) for m in msgs), return_exceptions=True)
            return
        except Exception:
            CONSUMER_ERRORS.labels(self.sub.durable, "handler").inc()
            if len(msgs) > 1:
                # One bad message must not hold back the others: handle them one by one, so
                # only the one that fails is redelivered.
                log.warning("%s: a batch of %d failed; handling its messages one by one", self.sub.durable, len(msgs))
                for msg, envelope in zip(msgs, envelopes, strict=True):
                    await self._handle_batch([msg], [envelope])
                return
            log.exception("%s: handler failed on a message; redelivering it", self.sub.durable)
            await msgs[0].nak(delay=retry_delay(msgs[0]))
            return
        for msg in msgs:
            # Buffered by the client, flushed together; a lost ack only means a redelivery.
            with contextlib.suppress(Exception):
                await msg.ack()


async def _in_progress(msgs: list[Msg]) -> None:
    while True:
        await asyncio.sleep(PROGRESS_S)
        for msg in msgs:
            with contextlib.suppress(Exception):
                await msg.in_progress()


def retry_delay(msg: Msg) -> float:
    """How long JetStream keeps a failed message back before its next delivery."""
    try:
        failures = max(1, msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (no reply subject to read it from)
        failures = 1
    return min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 16))


def _status(msg: Msg) -> str | None:
    return msg.headers.get("Status") if msg.headers else None


def _with_arrived(first: Msg, arrived: asyncio.Queue[Msg], limit: int) -> list[Msg]:
    """The message just received plus whatever else already arrived, without waiting."""
    msgs = [first]
    while len(msgs) < limit and not arrived.empty():
        msgs.append(arrived.get_nowait())
    return msgs
