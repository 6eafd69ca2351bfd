"""EventConsumer on a real JetStream durable and a real event store: effectively-once handling."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import msgspec
import nats
import pytest
from eventsourcing.domain import Aggregate
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import PubAck

from contracts.events import EventEnvelope
from contracts.payloads.shapes import RunOutput
from contracts.subjects import EVENTS_STREAM, aggregate_events, event_subject
from libs.bus.consumer import EachAlone, EventConsumer, Subscription, TryLater
from libs.domain.ledger import Ledger
from libs.domain.run import Run
from libs.eventstore.store import EventStore
from tests.polling import eventually

pytestmark = pytest.mark.integration

WORKSPACE = "ws-consumer"
DURABLE = "it-ledger"


class Handler:
    """Records every batch it is given and answers with one new Ledger per event."""

    def __init__(self, fail_first: int = 0, work_s: float = 0.0) -> None:
        self.fail_first = fail_first
        self.work_s = work_s
        self.failed: list[list[int]] = []
        self.succeeded: list[list[int]] = []

    async def __call__(self, events: list[EventEnvelope]) -> Sequence[Aggregate]:
        seqs = [e.seq for e in events]
        if self.work_s:
            await asyncio.sleep(self.work_s)
        if self.fail_first > 0:
            self.fail_first -= 1
            self.failed.append(seqs)
            raise RuntimeError("the handler broke")
        self.succeeded.append(seqs)
        return [ledger_for(e) for e in events]

    def handled(self) -> Counter[int]:
        return Counter(seq for batch in self.succeeded for seq in batch)


@dataclass(frozen=True)
class Limit:
    """A capacity of at most `size` events handled at once by one replica."""

    size: int

    def room(self, taken: int) -> int:
        return self.size - taken


def ledger_for(e: EventEnvelope) -> Ledger:
    # A new aggregate each time it is called: a second handling would append a second set.
    ledger = Ledger.open(e.workspace_id, f"{e.seq}/{uuid.uuid4()}")
    ledger.charge(
        run_id=e.aggregate_id,
        subtask_id="s1",
        model="claude-sonnet-4-20250514",
        input_tokens=10,
        output_tokens=5,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=0.001,
        cpu_time_ms=100,
        subrequests=1,
        priced=True,
    )
    return ledger


def save_runs(store: EventStore, n: int) -> list[EventEnvelope]:
    """n finished runs (run.started, run.succeeded each), saved in one append; their envelopes."""
    before = store.head()
    runs = []
    for i in range(n):
        run = Run.start(WORKSPACE, str(uuid.uuid4()), f"sub{i}", "codegen", 1, "anthropic", "m")
        run.succeed(RunOutput(files={}, summary="ok"), {"input_tokens": 10, "output_tokens": 5}, 100, 1)
        runs.append(run)
    store.save(runs)
    return store.read(before, limit=10_000)


async def publish(js: JetStreamContext, e: EventEnvelope, msg_id: str | None = None) -> PubAck:
    """As the relay does: the envelope as JSON under its seq (or another id, to get a copy in)."""
    return await js.publish(
        event_subject(e.workspace_id, e.type),
        msgspec.json.encode(e),
        headers={"Nats-Msg-Id": msg_id or str(e.seq)},
        stream=EVENTS_STREAM,
    )


async def publish_all(js: JetStreamContext, events: list[EventEnvelope]) -> None:
    for e in events:
        await publish(js, e)


async def wait_handled(store: EventStore, seqs: list[int], durable: str = DURABLE) -> None:
    async def all_tracked() -> bool:
        return await asyncio.to_thread(store.handled, durable, seqs) == set(seqs)

    await eventually(all_tracked, f"{durable} did not handle seqs {seqs[0]}..{seqs[-1]}")


async def wait_drained(js: JetStreamContext, durable: str = DURABLE) -> None:
    """Every message of the stream delivered to the durable and acknowledged."""

    async def drained() -> bool:
        stream = await js.stream_info(EVENTS_STREAM)
        info = await js.consumer_info(EVENTS_STREAM, durable)
        return (
            info.num_pending == 0 and info.num_ack_pending == 0 and info.ack_floor.stream_seq == stream.state.last_seq
        )

    await eventually(drained, f"{durable} did not ack everything")


def ledger_events_by_source(store: EventStore, after: int) -> Counter[tuple[int, str]]:
    """(source seq, event type) of every ledger event appended after `after`."""
    counts: Counter[tuple[int, str]] = Counter()
    ledgers: dict[str, int] = {}
    for e in store.read(after, limit=10_000):
        if e.type == "ledger.opened":
            ledgers[e.aggregate_id] = int(e.payload["task_id"].split("/")[0])
        if e.type.startswith("ledger."):
            counts[(ledgers[e.aggregate_id], e.type)] += 1
    return counts


def exactly_once(seqs: list[int]) -> Counter[tuple[int, str]]:
    return Counter({(s, t): 1 for s in seqs for t in ("ledger.opened", "ledger.charged")})


@pytest.fixture
async def start_consumer() -> AsyncIterator[Callable[..., Awaitable[EventConsumer]]]:
    started: list[EventConsumer] = []

    async def start(
        js: JetStreamContext,
        store: EventStore,
        handler: Handler,
        batch: int = 256,
        each: bool = False,
        capacity: Limit | None = None,
    ) -> EventConsumer:
        # `each`: as a handler with outside effects is subscribed, one event at a time.
        handle = EachAlone(lambda e: handler([e]), capacity) if each else handler
        sub = Subscription(durable=DURABLE, filter_subjects=(aggregate_events("run"),), handle=handle)
        consumer = EventConsumer(js, store, sub, batch=batch)
        await consumer.start()
        started.append(consumer)
        return consumer

    try:
        yield start
    finally:
        for consumer in started:
            await consumer.stop()


Start = Callable[..., Awaitable[EventConsumer]]


async def test_events_are_handled_saved_and_tracked(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    handler = Handler()
    await start_consumer(js, store, handler)
    events = await asyncio.to_thread(save_runs, store, 10)
    seqs = [e.seq for e in events]
    head = store.head()

    await publish_all(js, events)
    await wait_handled(store, seqs)
    await wait_drained(js)

    assert handler.handled() == Counter(seqs), "each event given to the handler once"
    assert ledger_events_by_source(store, head) == exactly_once(seqs)
    assert store.consumer_positions()[DURABLE] == {"position": max(seqs), "handled": len(seqs)}
    assert store.handled("someone-else", seqs) == set()


async def test_a_redelivery_never_reaches_a_handler_with_effects(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    handler = Handler()
    await start_consumer(js, store, handler, each=True)
    events = await asyncio.to_thread(save_runs, store, 2)
    seqs = [e.seq for e in events]
    first, fresh = events[:3], events[3]
    before = store.head()
    await publish_all(js, first)
    await wait_handled(store, seqs[:3])
    await wait_drained(js)
    head = store.head()

    # The same envelope again under another Nats-Msg-Id: JetStream stores and delivers it twice.
    again = await publish(js, first[0], msg_id=f"{first[0].seq}-redelivered")
    assert not again.duplicate
    await wait_drained(js)

    assert store.head() == head, "a handled seq appends nothing"
    # Its tracking row keeps the copy from the handler too: effects like a model call happen once.
    assert handler.handled() == Counter(seqs[:3])

    # A copy that arrives next to new work: only the new event reaches the handler.
    await publish(js, first[1], msg_id=f"{first[1].seq}-redelivered")
    await publish(js, fresh)
    await wait_handled(store, [fresh.seq])
    await wait_drained(js)

    assert handler.handled() == Counter(seqs), "every seq reached the handler exactly once"
    assert ledger_events_by_source(store, before) == exactly_once(seqs)
    assert store.consumer_positions()[DURABLE] == {"position": fresh.seq, "handled": len(seqs)}
    assert (await js.stream_info(EVENTS_STREAM)).state.messages == 6


async def test_a_pure_handler_redelivered_appends_nothing_without_a_tracking_lookup(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    handler = Handler()
    await start_consumer(js, store, handler)
    events = await asyncio.to_thread(save_runs, store, 2)
    seqs = [e.seq for e in events]
    first, fresh = events[:3], events[3]
    before = store.head()
    await publish_all(js, first)
    await wait_handled(store, seqs[:3])
    await wait_drained(js)
    head = store.head()

    await publish(js, first[0], msg_id=f"{first[0].seq}-redelivered")
    await wait_drained(js)
    assert store.head() == head, "a handled seq appends nothing"

    # A copy next to new work: the conflict on the copy's tracking row must not lose the new event.
    await publish(js, first[1], msg_id=f"{first[1].seq}-redelivered")
    await publish(js, fresh)
    await wait_handled(store, [fresh.seq])
    await wait_drained(js)

    assert ledger_events_by_source(store, before) == exactly_once(seqs)
    assert store.consumer_positions()[DURABLE] == {"position": fresh.seq, "handled": len(seqs)}


async def test_a_failing_batch_is_redelivered_and_handled_once_it_succeeds(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    handler = Handler(fail_first=1)
    await start_consumer(js, store, handler)
    events = await asyncio.to_thread(save_runs, store, 2)
    seqs = [e.seq for e in events]
    head = store.head()

    await publish_all(js, events)
    await wait_handled(store, seqs)
    await wait_drained(js)

    assert len(handler.failed) == 1
    assert set(handler.failed[0]) <= set(seqs)
    assert handler.handled() == Counter(seqs), "the failed batch came back and was handled once"
    assert ledger_events_by_source(store, head) == exactly_once(seqs)


async def test_two_replicas_share_the_durable_and_handle_each_event_once(
    postgres_url: str, nats_url: str, store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    other_nc: NatsClient = await nats.connect(nats_url, name="replica-2")
    other_store = EventStore(postgres_url)
    consumers: list[EventConsumer] = []
    try:
        replicas = [Handler(work_s=0.005), Handler(work_s=0.005)]
        consumers += [
            await start_consumer(js, store, replicas[0], batch=8),
            await start_consumer(other_nc.jetstream(), other_store, replicas[1], batch=8),
        ]
        events = await asyncio.to_thread(save_runs, store, 100)
        seqs = [e.seq for e in events]
        head = store.head()

        acks = [
            await js.publish_async(
                event_subject(e.workspace_id, e.type),
                msgspec.json.encode(e),
                headers={"Nats-Msg-Id": str(e.seq)},
                stream=EVENTS_STREAM,
            )
            for e in events
        ]
        await asyncio.gather(*acks)
        await wait_handled(store, seqs)
        await wait_drained(js)

        assert all(r.succeeded for r in replicas), "both replicas did some of the work"
        assert set(replicas[0].handled() + replicas[1].handled()) == set(seqs)
        assert ledger_events_by_source(store, head) == exactly_once(seqs)
        assert store.consumer_positions()[DURABLE]["handled"] == len(seqs)
    finally:
        for consumer in consumers:
            await consumer.stop()  # before their store and connection go away
        other_store.close()
        await other_nc.close()


async def test_one_failing_event_never_makes_another_events_effect_happen_again(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    events = await asyncio.to_thread(save_runs, store, 3)
    seqs = [e.seq for e in events]
    poison = seqs[2]
    effects: Counter[int] = Counter()

    class Effects(Handler):
        async def __call__(self, batch: list[EventEnvelope]) -> Sequence[Aggregate]:
            effects.update(e.seq for e in batch)  # a model call, say: done before anything fails
            if poison in {e.seq for e in batch} and effects[poison] < 3:
                raise RuntimeError("this event breaks the handler, twice")
            return await super().__call__(batch)

    head = store.head()
    await start_consumer(js, store, Effects(), each=True)
    await publish_all(js, events)
    await wait_handled(store, seqs)
    await wait_drained(js)

    assert effects == Counter({**dict.fromkeys(seqs, 1), poison: 3}), "only the failing event ran again"
    assert ledger_events_by_source(store, head) == exactly_once(seqs)


class PoisonHandler(Handler):
    """Fails every batch that holds one particular event; handles everything else."""

    def __init__(self, poison: int) -> None:
        super().__init__()
        self.poison = poison

    async def __call__(self, events: list[EventEnvelope]) -> Sequence[Aggregate]:
        if any(e.seq == self.poison for e in events):
            self.failed.append([e.seq for e in events])
            raise RuntimeError("this event breaks the handler")
        return await super().__call__(events)


async def test_a_poison_message_does_not_hold_back_the_rest_of_its_batch(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    events = await asyncio.to_thread(save_runs, store, 4)
    seqs = [e.seq for e in events]
    poison = seqs[1]
    handler = PoisonHandler(poison)
    # Published before the consumer starts, so the first fetch gets them as one batch.
    await publish_all(js, events)
    await start_consumer(js, store, handler)

    healthy = [s for s in seqs if s != poison]
    await wait_handled(store, healthy)

    assert any(len(batch) > 1 and poison in batch for batch in handler.failed), "it never came as a batch"
    assert handler.handled() == Counter(healthy)
    assert await asyncio.to_thread(store.handled, DURABLE, [poison]) == set()


class Later(Handler):
    """The first delivery cannot be handled now: it asks to be handed the event again later."""

    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s
        self.delivered_at: list[float] = []

    async def __call__(self, events: list[EventEnvelope]) -> Sequence[Aggregate]:
        self.delivered_at.append(time.monotonic())
        if len(self.delivered_at) == 1:
            raise TryLater("the outside service is rate limited", self.delay_s)
        return await super().__call__(events)


async def test_a_handler_that_asks_to_try_later_gets_the_event_again_when_it_said(
    store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    handler = Later(delay_s=2.5)  # longer than the retry delay of a failure (1 s), to tell them apart
    await start_consumer(js, store, handler, each=True)
    event = (await asyncio.to_thread(save_runs, store, 1))[0]
    await publish_all(js, [event])

    await wait_handled(store, [event.seq])

    first, second = handler.delivered_at
    assert second - first >= 2.5 * 0.9
    assert handler.handled() == Counter([event.seq])


class Holding(Handler):
    """Holds each event it is handed until released, noting the most it held at once."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = 0
        self.most = 0
        self.released = asyncio.Event()

    async def __call__(self, events: list[EventEnvelope]) -> Sequence[Aggregate]:
        self.holding += 1
        self.most = max(self.most, self.holding)
        try:
            await self.released.wait()
        finally:
            self.holding -= 1
        return await super().__call__(events)


async def test_a_replica_takes_no_more_than_its_capacity_and_leaves_the_rest_to_the_others(
    postgres_url: str, nats_url: str, store: EventStore, js: JetStreamContext, start_consumer: Start
) -> None:
    events = await asyncio.to_thread(save_runs, store, 3)
    seqs = [e.seq for e in events]
    await publish_all(js, events)

    async def taken() -> tuple[int, int]:
        """(delivered and not yet acknowledged, still in the stream for any replica)"""
        info = await js.consumer_info(EVENTS_STREAM, DURABLE)
        return info.num_ack_pending, info.num_pending

    first = Holding()
    await start_consumer(js, store, first, each=True, capacity=Limit(2))
    await eventually(lambda: first.holding >= 2, "the first replica took nothing", 10)
    await asyncio.sleep(0.5)  # room to take more, were it to
    assert first.most == 2
    assert await taken() == (2, 4), "the other four stay in the stream"

    other_nc = await nats.connect(nats_url, name="replica-2")
    other_store = EventStore(postgres_url)
    replica: EventConsumer | None = None
    try:
        second = Holding()
        replica = await start_consumer(other_nc.jetstream(), other_store, second, each=True, capacity=Limit(2))
        await eventually(lambda: second.holding >= 2, "an idle replica got none of the work", 10)
        assert await taken() == (4, 2)

        first.released.set()
        second.released.set()
        await wait_handled(store, seqs)
    finally:
        if replica is not None:
            await replica.stop()  # before its connection closes under it
        await other_nc.close()
        other_store.close()

    assert first.most == 2 and second.most == 2
    assert first.handled() + second.handled() == Counter(seqs), "each event handled once, by one replica"


class FailingFor(Handler):
    """Fails its first `failures` deliveries, noting when each delivery came."""

    def __init__(self, failures: int) -> None:
        super().__init__(fail_first=failures)
        self.delivered_at: list[float] = []

    async def __call__(self, events: list[EventEnvelope]) -> Sequence[Aggregate]:
        self.delivered_at.append(time.monotonic())
        return await super().__call__(events)


@pytest.mark.parametrize("each", [False, True])
async def test_a_message_that_keeps_failing_comes_back_later_each_time(
    store: EventStore, js: JetStreamContext, start_consumer: Start, each: bool
) -> None:
    handler = FailingFor(failures=3)
    await start_consumer(js, store, handler, each=each)
    event = (await asyncio.to_thread(save_runs, store, 1))[0]
    await publish_all(js, [event])

    await wait_handled(store, [event.seq])

    # Kept back 1 s, then 2 s, then 4 s (RETRY_FIRST_S doubling): JetStream holds it that long.
    gaps = [later - earlier for earlier, later in itertools.pairwise(handler.delivered_at)]
    assert len(gaps) == 3
    for gap, delay in zip(gaps, (1.0, 2.0, 4.0), strict=True):
        assert gap >= delay * 0.9, (gaps, delay)
    assert handler.handled() == Counter([event.seq])


@pytest.mark.parametrize("each", [False, True])
async def test_a_message_that_is_not_an_event_is_dropped_and_the_rest_handled(
    store: EventStore, js: JetStreamContext, start_consumer: Start, each: bool
) -> None:
    events = await asyncio.to_thread(save_runs, store, 2)
    seqs = [e.seq for e in events]
    # Something other than the relay publishes on the events subjects.
    await js.publish(event_subject(events[0].workspace_id, "run.succeeded"), b"not an event")
    await publish_all(js, events)
    handler = Handler()
    await start_consumer(js, store, handler, each=each)

    await wait_handled(store, seqs)
    await wait_drained(js)  # the foreign message too: terminated, not redelivered forever

    assert handler.handled() == Counter(seqs)


async def test_a_failed_tracking_lookup_redelivers_and_the_consumer_goes_on(
    postgres_url: str, store: EventStore, js: JetStreamContext, start_consumer: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The database away for a moment while a handler with effects looks up what it handled: the
    # consumer's store only (the test's own look-ups below must not be the one that fails).
    consumers_store = EventStore(postgres_url)
    real, failures = consumers_store.handled, []

    def flaky(consumer: str, seqs: list[int]) -> set[int]:
        if not failures:
            failures.append(seqs)
            raise ConnectionError("the database went away for a moment")
        return real(consumer, seqs)

    monkeypatch.setattr(consumers_store, "handled", flaky)
    handler = Handler()
    await start_consumer(js, consumers_store, handler, each=True)
    first = await asyncio.to_thread(save_runs, store, 1)
    await publish_all(js, first)
    await wait_handled(store, [e.seq for e in first])
    later = await asyncio.to_thread(save_runs, store, 1)  # the fetch loop still runs
    await publish_all(js, later)
    seqs = [e.seq for e in first + later]

    await wait_handled(store, seqs)
    consumers_store.close()

    assert failures and handler.handled() == Counter(seqs)
