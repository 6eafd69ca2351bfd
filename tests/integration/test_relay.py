"""The outbox relay between a real PostgreSQL log and a real JetStream EVENTS stream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.events import EventEnvelope
from contracts.subjects import EVENTS_STREAM, event_subject
from libs.bus.jetstream import DUPLICATE_WINDOW_S, Tail, ensure_events_stream, stream_tail
from libs.bus.publisher import WRONG_LAST_SEQUENCE, Publisher, PublishRefused
from libs.domain.task import Task
from libs.eventstore.listen import Listener
from libs.eventstore.store import EVENTS_CHANNEL, EventStore
from services.planner.plans import plan
from services.stream import relay as relay_module
from services.stream.relay import relay_forever
from tests.polling import eventually

pytestmark = pytest.mark.integration

WORKSPACES = ("ws-relay-a", "ws-relay-b")
REQUEST: dict[str, Any] = {
    "description": "Add input validation",
    "agentType": "codegen",
    "repo": {"owner": "acme", "repo": "api", "branch": "feature", "baseBranch": "main", "files": {"a.py": "x = 1\n"}},
    "config": {"model": "m", "provider": "anthropic", "maxTokens": 16, "temperature": 0.0, "maxRetries": 0},
    "parentTaskId": None,
}


class Relay:
    """relay_forever as a task, with its own LISTEN connection, stoppable like a crash."""

    def __init__(self, store: EventStore, nc: NatsClient, database_url: str) -> None:
        self.store, self.nc = store, nc
        self.listener = Listener(database_url, EVENTS_CHANNEL)
        self.progress: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.listener.start()
        self.task = asyncio.create_task(relay_forever(self.store, self.nc, self.listener, self.progress))
        task = self.task
        await eventually(lambda: "position" in self.progress or task.done(), "the relay did not start")
        if task.done():
            task.result()  # it died on start: raise its error

    async def stop(self) -> None:
        if self.task is not None:
            # Cancel until it is gone, so that a swallowed cancellation fails only the test
            # written for it (test_cancelling_the_relay_as_a_notify_arrives_stops_it), not all.
            for _ in range(10):
                self.task.cancel()
                done, _ = await asyncio.wait([self.task], timeout=1.0)
                if done:
                    break
            assert self.task.done(), "the relay ignored every cancellation"
            with contextlib.suppress(asyncio.CancelledError):
                await self.task  # a relay that crashed raises its error here
        await self.listener.stop()


@pytest.fixture
async def relay(store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str) -> AsyncIterator[Relay]:
    running = Relay(store, nc, postgres_url)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


def save_tasks(store: EventStore, n: int) -> int:
    """n tasks across two workspaces, two events each (submitted, dispatched); returns the head."""
    seq = 0
    for i in range(n):
        task_id = uuid.uuid4()
        task = Task.submit(task_id, WORKSPACES[i % 2], REQUEST, plan(str(task_id), "codegen", f"task {i}"))
        for subtask in task.ready_subtasks():
            task.dispatch(subtask)
        seq = store.save([task])
    return seq


async def stream_count(js: JetStreamContext) -> int:
    return (await js.stream_info(EVENTS_STREAM)).state.messages


async def wait_for_count(js: JetStreamContext, n: int, timeout: float = 10.0) -> None:
    async def reached() -> bool:
        return await stream_count(js) >= n

    await eventually(reached, f"the stream did not reach {n} messages", timeout)


async def stream_messages(js: JetStreamContext) -> list[tuple[str, str, EventEnvelope]]:
    """(subject, Nats-Msg-Id, envelope) of every message in the stream, in stream order."""
    info = await js.stream_info(EVENTS_STREAM)
    out = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        try:
            msg = await js.get_msg(EVENTS_STREAM, seq=seq)
        except NotFoundError:
            continue  # deleted: no consumer sees it
        headers = msg.headers or {}
        out.append((msg.subject, headers.get("Nats-Msg-Id", ""), msgspec.json.decode(msg.data, type=EventEnvelope)))
    return out


async def assert_stream_mirrors_log(js: JetStreamContext, store: EventStore, ids_are_seqs: bool = True) -> None:
    """The stream holds every event of the log exactly once, in seq order, as the relay encodes them.

    `ids_are_seqs=False` only requires distinct message ids (a re-publish may need new ones)."""
    log = await asyncio.to_thread(store.read, 0, 10_000)
    messages = await stream_messages(js)
    assert [envelope.seq for _, _, envelope in messages] == [e.seq for e in log]
    assert [envelope for _, _, envelope in messages] == log
    ids = [msg_id for _, msg_id, _ in messages]
    if ids_are_seqs:
        assert ids == [str(e.seq) for e in log]
    else:
        assert all(ids) and len(set(ids)) == len(ids)
    assert [subject for subject, _, _ in messages] == [event_subject(e.workspace_id, e.type) for e in log]


async def test_events_saved_after_start_are_published_in_order(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    assert relay.progress["position"] == 0
    head = await asyncio.to_thread(save_tasks, store, 10)

    await wait_for_count(js, 20)

    await assert_stream_mirrors_log(js, store)
    messages = await stream_messages(js)
    assert {subject for subject, _, _ in messages} == {
        f"events.{ws}.task.{kind}" for ws in WORKSPACES for kind in ("submitted", "subtask_dispatched")
    }
    await eventually(lambda: relay.progress["position"] == head, "progress does not report the head")
    assert (await stream_tail(js)).event_seq == head


async def test_a_notify_wakes_the_relay_before_its_fallback_poll(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    for round_ in range(3):
        await asyncio.to_thread(save_tasks, store, 1)
        await wait_for_count(js, 4 * round_ + 2)
        # Let the relay settle into its wait (a fallback poll of 1 s) with nothing left to read.
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await asyncio.to_thread(save_tasks, store, 1)
        await wait_for_count(js, 4 * round_ + 4, timeout=5.0)
        elapsed = time.monotonic() - started
        # 0.2 s idle + 0.5 s is still short of the 1 s poll: only the NOTIFY can explain it.
        assert elapsed < 0.5, f"round {round_}: published {elapsed:.3f}s after the commit"
    await assert_stream_mirrors_log(js, store)


async def test_cancelling_the_relay_as_a_notify_arrives_stops_it(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    """How a leader stands down (and the stream service shuts down): cancel, then await.

    Under load a NOTIFY can wake the Listener in the same loop iteration as the cancel; the
    relay must still stop, or the await never returns and the ex-leader keeps relaying."""
    head = await asyncio.to_thread(save_tasks, store, 1)
    await eventually(lambda: relay.progress["position"] == head, "the relay did not publish")
    await asyncio.sleep(0.05)  # idle in `wakeups.wait`
    task = relay.task
    assert task is not None

    relay.listener.poke()  # what a NOTIFY does
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=2.0)

    assert task in done, "the relay swallowed its cancellation and is still running"
    assert task.cancelled()


async def test_a_new_relay_resumes_after_the_last_published_seq(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=relay_module.__name__)
    first = Relay(store, nc, postgres_url)
    await first.start()
    published = await asyncio.to_thread(save_tasks, store, 5)
    await wait_for_count(js, 10)
    await first.stop()

    head = await asyncio.to_thread(save_tasks, store, 5)  # written while no relay runs
    assert await stream_count(js) == 10
    assert (await stream_tail(js)).event_seq == published

    second = Relay(store, nc, postgres_url)
    await second.start()
    try:
        await eventually(lambda: second.progress["position"] == head, "the new relay did not catch up")
    finally:
        await second.stop()

    resumed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("relay resuming")]
    assert resumed == ["relay resuming after seq 0", f"relay resuming after seq {published}"]
    assert await stream_count(js) == 20 == len(store.read(0))
    await assert_stream_mirrors_log(js, store)


async def test_republishing_a_published_seq_is_deduplicated(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    await asyncio.to_thread(save_tasks, store, 3)
    await wait_for_count(js, 6)
    event = store.read(0)[2]

    ack = await js.publish(
        event_subject(event.workspace_id, event.type),
        msgspec.json.encode(event),
        headers={"Nats-Msg-Id": str(event.seq)},
        stream=EVENTS_STREAM,
    )

    assert ack.duplicate
    assert await stream_count(js) == 6
    await assert_stream_mirrors_log(js, store)


async def relay_then_lose(store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str, lose: str) -> int:
    """Relays 4 tasks (8 events), stops the relay, then makes the bus lose them."""
    first = Relay(store, nc, postgres_url)
    await first.start()
    head = await asyncio.to_thread(save_tasks, store, 4)
    await wait_for_count(js, 8)
    await first.stop()
    if lose == "purge":
        await js.purge_stream(EVENTS_STREAM)
    else:  # the stream is gone and declared again, as after losing the server's store
        await js.delete_stream(EVENTS_STREAM)
        await ensure_events_stream(js)
    assert await stream_count(js) == 0
    assert (await stream_tail(js)).event_seq == 0
    return head


async def run_relay_to(store: EventStore, nc: NatsClient, postgres_url: str, head: int) -> None:
    relay = Relay(store, nc, postgres_url)
    await relay.start()
    try:
        # Once its position is the head, the relay has had every publish acknowledged.
        await eventually(lambda: relay.progress["position"] == head, f"the relay did not reach seq {head}")
    finally:
        await relay.stop()


async def test_after_the_stream_is_recreated_a_new_relay_republishes_everything(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str
) -> None:
    head = await relay_then_lose(store, nc, js, postgres_url, "recreate")
    await run_relay_to(store, nc, postgres_url, head)
    await assert_stream_mirrors_log(js, store)


async def test_after_the_stream_is_purged_a_new_relay_republishes_everything(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str
) -> None:
    head = await relay_then_lose(store, nc, js, postgres_url, "purge")
    await run_relay_to(store, nc, postgres_url, head)
    # A purge keeps the stream's duplicate-window state: publishing seq 1..8 under the same
    # Nats-Msg-Id again is acknowledged as a `duplicate` and stores nothing.
    assert await stream_count(js) == 8, (
        "the relay re-published seqs 1..8 after the purge, but JetStream dropped them as "
        f"duplicates (duplicate window {DUPLICATE_WINDOW_S:.0f}s) and the relay advanced anyway"
    )
    await assert_stream_mirrors_log(js, store, ids_are_seqs=False)

    # And the relay still restarts cleanly after that recovery, resuming after seq 8.
    later = await asyncio.to_thread(save_tasks, store, 2)
    await run_relay_to(store, nc, postgres_url, later)
    assert await stream_count(js) == 12
    await assert_stream_mirrors_log(js, store, ids_are_seqs=False)


async def test_after_a_purge_events_never_published_go_out_after_the_lost_ones(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str
) -> None:
    # The bus lost seq 1..8 (their ids are still in the duplicate window) and seq 9..12 were
    # written while no relay ran: one batch holds both kinds, and the stream must still end up
    # holding the whole log in seq order.
    await relay_then_lose(store, nc, js, postgres_url, "purge")
    head = await asyncio.to_thread(save_tasks, store, 2)
    await run_relay_to(store, nc, postgres_url, head)
    assert await stream_count(js) == 12
    await assert_stream_mirrors_log(js, store, ids_are_seqs=False)


async def lose_the_tail(js: JetStreamContext, n: int) -> None:
    """The stream loses its last n messages while their ids stay in its duplicate window."""
    last = (await js.stream_info(EVENTS_STREAM)).state.last_seq
    for seq in range(last - n + 1, last + 1):
        await js.delete_msg(EVENTS_STREAM, seq)


@pytest.mark.parametrize("lost", [1, 5])
async def test_after_the_stream_lost_its_tail_the_lost_events_go_out_again_before_the_new_ones(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str, lost: int
) -> None:
    # seq 1..8 were relayed, the stream then lost its last `lost` messages (not the ones before
    # them), and seq 9..12 were written while no relay ran: the next batch holds events the
    # stream lost, whose ids it still answers as duplicates, then events it never had.
    first = Relay(store, nc, postgres_url)
    await first.start()
    await asyncio.to_thread(save_tasks, store, 4)
    await wait_for_count(js, 8)
    await first.stop()
    await lose_the_tail(js, lost)
    assert await stream_count(js) == 8 - lost

    head = await asyncio.to_thread(save_tasks, store, 2)
    await run_relay_to(store, nc, postgres_url, head)

    # What a consumer reading the stream from its start sees: every event once, in seq order.
    await assert_stream_mirrors_log(js, store, ids_are_seqs=False)


async def test_events_a_former_leader_published_are_passed_over_once(
    store: EventStore, nc: NatsClient, js: JetStreamContext, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The new leader looked where the stream ends just before the former one published seq 9..12:
    # they come back to it as duplicates of messages the stream holds, and are not sent again.
    first = Relay(store, nc, postgres_url)
    await first.start()
    await asyncio.to_thread(save_tasks, store, 4)
    await wait_for_count(js, 8)
    await first.stop()
    stale = await stream_tail(js)
    former = await asyncio.to_thread(save_tasks, store, 2)
    await run_relay_to(store, nc, postgres_url, former)
    assert await stream_count(js) == 12

    tails = [stale]

    async def stale_then_real(context: JetStreamContext) -> Tail:
        return tails.pop() if tails else await stream_tail(context)

    monkeypatch.setattr(relay_module, "stream_tail", stale_then_real)
    head = await asyncio.to_thread(save_tasks, store, 1)
    await run_relay_to(store, nc, postgres_url, head)

    assert await stream_count(js) == 14
    await assert_stream_mirrors_log(js, store)


async def test_a_stale_relay_cannot_interleave_with_the_leader(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    # A relay that lost its lock (its PostgreSQL session died) but still publishes what it had
    # read: the stream refuses it rather than storing events twice or out of order.
    await asyncio.to_thread(save_tasks, store, 2)
    await wait_for_count(js, 4)
    event = store.read(0)[0]
    publisher = Publisher(relay.nc)
    await publisher.start()
    try:
        (refused,) = await relay_module.publish_after(publisher, [event], 0, lambda e: f"{e.seq}.stale")
    finally:
        await publisher.stop()
    assert isinstance(refused, PublishRefused) and refused.err_code == WRONG_LAST_SEQUENCE
    assert await stream_count(js) == 4
    await assert_stream_mirrors_log(js, store)


async def test_a_stream_recreated_under_a_running_relay_gets_the_whole_log(
    relay: Relay, store: EventStore, js: JetStreamContext
) -> None:
    await asyncio.to_thread(save_tasks, store, 2)
    await wait_for_count(js, 4)
    await js.delete_stream(EVENTS_STREAM)
    await ensure_events_stream(js)

    head = await asyncio.to_thread(save_tasks, store, 1)
    # Its next publish expects stream sequence 4 and is refused: the relay starts over from the
    # new stream's tail rather than leave seq 1..4 missing from it.
    await wait_for_count(js, 6)
    await eventually(lambda: relay.progress["position"] == head, "the relay did not catch up")
    await assert_stream_mirrors_log(js, store)


async def test_a_publish_no_stream_takes_is_refused_not_left_pending(nc: NatsClient) -> None:
    publisher = Publisher(nc)
    await publisher.start()
    try:
        answer = await publisher.publish("nowhere.at.all", b"{}", {})
        with pytest.raises(PublishRefused) as refused:
            await asyncio.wait_for(answer, 5)
    finally:
        await publisher.stop()
    assert refused.value.code == 503


async def relayed_seqs(js: JetStreamContext) -> list[int]:
    """The event seqs the stream holds, in stream order, passing over messages that are not events."""
    info = await js.stream_info(EVENTS_STREAM)
    seqs = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(EVENTS_STREAM, seq=seq)
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            seqs.append(msgspec.json.decode(msg.data, type=EventEnvelope).seq)
    return seqs


@pytest.mark.parametrize("foreign", [b'{"hello": "world"}', b"not json at all"])
async def test_a_message_from_another_publisher_costs_no_event(
    relay: Relay, store: EventStore, js: JetStreamContext, nc: NatsClient, postgres_url: str, foreign: bytes
) -> None:
    # Something other than the relay publishes to `events.>` (a misconfigured tool, say), between
    # two of its batches: the relay's next publish no longer fits where it expects.
    await asyncio.to_thread(save_tasks, store, 2)
    await wait_for_count(js, 4)
    await js.publish("events.ws-relay-a.task.bogus", foreign)
    head = await asyncio.to_thread(save_tasks, store, 2)
    await eventually(lambda: relay.progress["position"] == head, "the relay did not get past the foreign message")
    assert sorted(set(await relayed_seqs(js))) == [e.seq for e in store.read(0)]

    # A relay starting with the foreign message last in the stream resumes after the last event
    # there, neither from 0 (re-publishing the whole log) nor stopping on it.
    await relay.stop()
    await js.publish("events.ws-relay-a.task.bogus", foreign)
    count = await stream_count(js)
    later = await asyncio.to_thread(save_tasks, store, 1)
    await run_relay_to(store, nc, postgres_url, later)
    assert await stream_count(js) == count + 2
    assert sorted(set(await relayed_seqs(js))) == [e.seq for e in store.read(0)]
