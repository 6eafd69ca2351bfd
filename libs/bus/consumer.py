"""Durable JetStream consumers that handle events in batches, effectively once.

FastStream's batch subscriber waits to fill a batch (or its timeout) before handing it over,
which puts the timeout on every hop of a task's latency. nats-py's `fetch` returns as soon as
it has anything, up to the batch size: so this loop uses nats-py directly (on the broker's
own connection), and keeps FastStream for commands.

Each batch: drop what this consumer already handled (its tracking rows), let the handler
change aggregates, then append their events together with the tracking rows in one
transaction, then ack. A crash before the commit redelivers; after it, the rows make the
redelivery a no-op.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM
from libs.eventstore.recorder import ConsumerTracking
from libs.eventstore.store import EventStore
from libs.observability.metrics import CONSUMER_BATCH, CONSUMER_ERRORS, EVENTS_HANDLED

log = logging.getLogger(__name__)

BatchHandler = Callable[[list[EventEnvelope]], Awaitable[Sequence[Aggregate]]]
_decoder = msgspec.json.Decoder(EventEnvelope)


@dataclass(frozen=True)
class Subscription:
    durable: str
    filter_subjects: tuple[str, ...]
    handle: BatchHandler


class EventConsumer:
    def __init__(self, js: JetStreamContext, store: EventStore, sub: Subscription, batch: int = 256) -> None:
        self.js = js
        self.store = store
        self.sub = sub
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
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
                ack_wait=60,
                max_ack_pending=10_000,
                filter_subjects=list(self.sub.filter_subjects),
            ),
        )
        psub = await self.js.pull_subscribe_bind(durable=self.sub.durable, stream=EVENTS_STREAM)
        self._running = True
        self._task = asyncio.create_task(self._loop(psub), name=f"consumer:{self.sub.durable}")

    async def stop(self) -> None:
        self._running = False
        if self._task:
            self._task.cancel()
            # A fetch can hold the cancellation until its own timeout; unacked messages are
            # redelivered anyway, so do not wait for it.
            await asyncio.wait([self._task], timeout=1.0)

    async def _loop(self, psub: JetStreamContext.PullSubscription) -> None:
        while self._running:
            try:
                msgs = await psub.fetch(batch=self.batch, timeout=5)
            except (TimeoutError, FetchTimeoutError):
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("fetch failed on %s", self.sub.durable)
                await asyncio.sleep(1)
                continue
            await self._handle(msgs)

    async def _handle(self, msgs: list[Msg]) -> None:
        CONSUMER_BATCH.labels(self.sub.durable).observe(len(msgs))
        try:
            envelopes = [_decoder.decode(m.data) for m in msgs]
            seqs = [e.seq for e in envelopes]
            handled = await asyncio.to_thread(self.store.handled, self.sub.durable, seqs)
            todo = [e for e in envelopes if e.seq not in handled]
            if todo:
                aggregates = await self.sub.handle(todo)
                tracking = ConsumerTracking(self.sub.durable, [e.seq for e in todo])
                await asyncio.to_thread(self.store.save, list(aggregates), tracking)
            EVENTS_HANDLED.labels(self.sub.durable).inc(len(todo))
        except IntegrityError:
            # Another replica handled some of these first: redeliver, and the tracking rows
            # will filter out what is done.
            CONSUMER_ERRORS.labels(self.sub.durable, "conflict").inc()
            log.info("%s: concurrent write, redelivering %d messages", self.sub.durable, len(msgs))
            await asyncio.gather(*(m.nak(delay=0.05) for m in msgs), return_exceptions=True)
            return
        except Exception:
            CONSUMER_ERRORS.labels(self.sub.durable, "handler").inc()
            log.exception("%s: handler failed, redelivering %d messages", self.sub.durable, len(msgs))
            await asyncio.gather(*(m.nak(delay=1.0) for m in msgs), return_exceptions=True)
            return
        await asyncio.gather(*(m.ack() for m in msgs), return_exceptions=True)
