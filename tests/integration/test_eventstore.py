"""The event store on a real PostgreSQL: batches, tracking, concurrency and the log."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from contracts.payloads.shapes import RunOutput, SubtaskResult
from libs.domain.base import ENVELOPE_FIELDS
from libs.domain.errors import EventTooLarge
from libs.domain.gate import Gate, review_gate_id
from libs.domain.ledger import Ledger
from libs.domain.task import Task
from libs.eventstore import recorder as recorder_module
from libs.eventstore.listen import Listener
from libs.eventstore.recorder import ConsumerTracking
from libs.eventstore.store import EVENTS_CHANNEL, EVENTS_TABLE, EventStore
from services.planner.plans import plan
from tests.factories import stored_request

pytestmark = pytest.mark.integration

WORKSPACE = "ws-store"


def request(description: str = "Add input validation") -> dict[str, Any]:
    return stored_request(description)


def new_task(description: str = "Add input validation", dispatch: bool = True) -> Task:
    task_id = uuid.uuid4()
    req = request(description)
    task = Task.submit(task_id, WORKSPACE, req, plan(str(task_id), "codegen", description))
    if dispatch:
        for subtask in task.ready_subtasks():
            task.dispatch(subtask)
    return task


def state(aggregate: Any) -> dict[str, Any]:
    """Everything an aggregate holds except the events waiting to be saved."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def event_count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()
    assert row is not None
    return int(row[0])


def test_saved_task_loads_back_with_the_same_state(store: EventStore) -> None:
    task = new_task()
    store.save([task])
    assert not task.pending_events

    loaded = store.load_many([task.id, uuid.uuid4()])  # an unknown id is simply absent

    assert set(loaded) == {task.id}
    again = loaded[task.id]
    assert isinstance(again, Task)
    assert state(again) == state(task)
    assert again.version == 2 and again.status == "assigned"
    assert again.dispatched == [task.subtasks[0].id]


def test_load_many_applies_events_saved_later(store: EventStore) -> None:
    task = new_task()
    store.save([task])
    task.start()
    store.save([task])

    again = store.load_many([task.id])[task.id]

    assert again.version == 3 and again.status == "running"
    assert state(again) == state(task)


@pytest.fixture
def keeping(postgres_url: str) -> Iterator[EventStore]:
    event_store = EventStore(postgres_url, kept=2)
    try:
        yield event_store
    finally:
        event_store.close()


def test_a_kept_aggregate_comes_back_with_what_others_appended_since(keeping: EventStore, store: EventStore) -> None:
    task = new_task()
    keeping.save([task])
    # Another replica moves the task on meanwhile.
    elsewhere = store.load_many([task.id])[task.id]
    elsewhere.start()
    store.save([elsewhere])

    again = keeping.load_many([task.id])[task.id]

    assert again is task  # brought up to date, not rebuilt
    assert again.version == 3 and again.status == "running"
    assert state(again) == state(store.load_many([task.id])[task.id])


def test_a_kept_aggregate_is_handed_out_once_and_kept_again_only_when_saved(keeping: EventStore) -> None:
    task = new_task()
    keeping.save([task])
    first = keeping.load_many([task.id])[task.id]
    second = keeping.load_many([task.id])[task.id]
    assert first is task and second is not task  # two holders never share one object

    first.start()  # changed, never saved (the handler failed): the log does not have it
    third = keeping.load_many([task.id])[task.id]
    assert third.status == "assigned" and third.version == 2

    third.start()
    keeping.save([third])
    assert keeping.load_many([task.id])[task.id] is third


def test_a_failed_save_keeps_nothing(keeping: EventStore, store: EventStore) -> None:
    task = new_task()
    keeping.save([task])
    stale = keeping.load_many([task.id])[task.id]
    current = store.load_many([task.id])[task.id]
    current.start()
    store.save([current])
    stale.fail("stale writer")

    with pytest.raises(IntegrityError):
        keeping.save([stale])

    again = keeping.load_many([task.id])[task.id]
    assert again is not stale and again.status == "running" and again.version == 3


def test_bare_events_saved_through_a_keeping_store_keep_nothing(keeping: EventStore) -> None:
    # The executor saves a run's call records as bare events while the run goes on.
    task = new_task()
    keeping.save([task])
    running = keeping.load_many([task.id])[task.id]
    running.start()

    keeping.save(running.collect_events())

    again = keeping.load_many([task.id])[task.id]
    assert again is not running  # not kept: its holder may still change it
    assert (again.status, again.version) == ("running", 3)


def test_a_settled_aggregate_is_not_kept(keeping: EventStore) -> None:
    # A finished task is seldom loaded again and holds its repository's files: not kept.
    task = new_task()
    keeping.save([task])
    ending = keeping.load_many([task.id])[task.id]
    ending.fail("gave up")
    keeping.save([ending])

    again = keeping.load_many([task.id])[task.id]

    assert ending.settled and again is not ending
    assert (again.status, again.version) == ("failed", 3)


def test_kept_aggregates_are_bounded_oldest_out(keeping: EventStore) -> None:
    tasks = [new_task(f"task {i}") for i in range(3)]
    for task in tasks:
        keeping.save([task])

    loaded = keeping.load_many([t.id for t in tasks])

    assert [loaded[t.id] is t for t in tasks] == [False, True, True]
    assert state(loaded[tasks[0].id]) == state(tasks[0])


def test_save_returns_highest_seq_strictly_increasing(store: EventStore) -> None:
    assert store.head() == 0
    seqs = []
    for i in range(5):
        seqs.append(store.save([new_task(f"task {i}")]))  # two events each: submitted, dispatched
        assert seqs[-1] == store.head()
    assert all(b > a for a, b in itertools.pairwise(seqs))
    assert seqs[0] >= 2

    assert store.save([]) == 0, "nothing to append"
    assert store.head() == seqs[-1]


def test_batch_of_100_aggregates_is_one_append(store: EventStore, postgres_url: str) -> None:
    before = store.head()
    tasks = [new_task(f"task {i}", dispatch=False) for i in range(100)]

    seq = store.save(tasks)

    assert seq == store.head()
    events = store.read(before, limit=1000)
    assert len(events) == 100
    assert events[-1].seq == seq
    assert {e.aggregate_id for e in events} == {str(t.id) for t in tasks}
    # One transaction wrote them all: every row carries the same inserting transaction id.
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute(
            f"SELECT count(DISTINCT xmin::text) FROM {EVENTS_TABLE} WHERE notification_id > %s", (before,)
        ).fetchone()
    assert row == (1,)
    assert set(store.load_many(t.id for t in tasks)) == {t.id for t in tasks}


def test_handled_reports_tracked_seqs(store: EventStore) -> None:
    store.save([new_task()], ConsumerTracking("planner", [3, 5, 8]))
    store.save([], ConsumerTracking("planner", [9]))  # tracking alone, no events

    assert store.handled("planner", [1, 3, 5, 7, 8, 9]) == {3, 5, 8, 9}
    assert store.handled("executor", [3, 5, 8]) == set(), "tracking is per consumer"
    assert store.handled("planner", []) == set()
    positions = store.consumer_positions()
    assert positions["planner"] == {"position": 9, "handled": 4}


def test_duplicate_tracking_raises_and_appends_nothing(store: EventStore, postgres_url: str) -> None:
    first = new_task("first")
    store.save([first], ConsumerTracking("cost-ledger", [41, 42]))
    head = store.head()
    rows = event_count(postgres_url)

    ledger = Ledger.open(WORKSPACE, str(first.id))
    second = new_task("second")
    with pytest.raises(IntegrityError):
        # seq 42 was handled already: the whole batch, 43 included, must roll back.
        store.save([ledger, second], ConsumerTracking("cost-ledger", [42, 43]))

    assert store.head() == head
    assert event_count(postgres_url) == rows
    assert store.load_many([ledger.id, second.id]) == {}
    assert store.handled("cost-ledger", [41, 42, 43]) == {41, 42}
    # A fresh attempt with only the new seq goes through.
    retry = Ledger.open(WORKSPACE, str(first.id))
    assert store.save([retry], ConsumerTracking("cost-ledger", [43])) > head
    assert store.handled("cost-ledger", [43]) == {43}


def test_two_writers_creating_the_same_aggregate_conflict(store: EventStore, postgres_url: str) -> None:
    other = EventStore(postgres_url)
    try:
        task_id = str(uuid.uuid4())
        mine, theirs = Gate.open_review(WORKSPACE, task_id), Gate.open_review(WORKSPACE, task_id)
        assert mine.id == theirs.id == review_gate_id(task_id)
        store.save([mine])
        head = store.head()

        with pytest.raises(IntegrityError):
            other.save([theirs])

        assert other.head() == head
        gates = [e for e in store.read(0) if e.aggregate_id == str(mine.id)]
        assert [e.type for e in gates] == ["gate.opened"]
        # The loser reloads and carries on from the winner's version.
        gate = other.load_many([mine.id])[mine.id]
        gate.decide("approve", "looks good")
        other.save([gate])
        assert store.load_many([mine.id])[mine.id].decision == "approve"
    finally:
        other.close()


def test_stale_writer_of_an_existing_aggregate_conflicts(store: EventStore, postgres_url: str) -> None:
    task = new_task()
    store.save([task])
    other = EventStore(postgres_url)
    try:
        a = store.load_many([task.id])[task.id]
        b = other.load_many([task.id])[task.id]
        a.start()
        store.save([a])
        b.cancel("user asked")
        with pytest.raises(IntegrityError):
            other.save([b])
        assert store.load_many([task.id])[task.id].status == "running"
    finally:
        other.close()


def test_read_returns_wire_envelopes(store: EventStore) -> None:
    before_ms = int(time.time() * 1000)
    task = new_task()
    seq = store.save([task])
    after_ms = int(time.time() * 1000)

    events = store.read(0)

    assert [e.seq for e in events] == [seq - 1, seq]
    submitted, dispatched = events
    assert submitted.type == "task.submitted"
    assert dispatched.type == "task.subtask_dispatched"
    for version, e in enumerate(events, start=1):
        assert e.workspace_id == WORKSPACE
        assert e.aggregate_id == str(task.id)
        assert e.version == version
        assert before_ms - 1 <= e.occurred_at <= after_ms + 1, "epoch milliseconds"
        assert not ENVELOPE_FIELDS & set(e.payload), "envelope fields stay out of the payload"
    assert submitted.occurred_at == int(task.created_on.timestamp() * 1000)
    subtasks = msgspec.to_builtins(task.subtasks)
    assert submitted.payload == {"request": task.request, "subtasks": subtasks, "revision_of": None, "retry_of": None}
    subtask = task.subtasks[0]
    assert dispatched.payload["subtask_id"] == subtask.id
    assert dispatched.payload["agent_type"] == "codegen"
    assert dispatched.payload["files"] == task.request["repo"]["files"]
    assert dispatched.payload["attempt"] == 1


def test_a_log_written_before_the_aggregates_emitted_structs_loads_and_reads_as_before(store: EventStore) -> None:
    # Rows as the code before stored them (flat JSON, one file inline from before blobs).
    task_id = uuid.uuid4()
    rows = [
        (
            "libs.domain.task:Task.Submitted",
            b'{"timestamp":"2024-11-02T08:00:00.500000Z","originator_topic":"libs.domain.task:Task",'
            b'"workspace_id":"ws-store","request":{"description":"Greet","agentType":"codegen","repo":{'
            b'"owner":"acme","repo":"app","branch":"f","baseBranch":"main","files":{"a.py":"print(1)\\n"}},'
            b'"config":{"model":"m","provider":"anthropic"}},"subtasks":[{"id":"aaaa0001","agentType":"codegen",'
            b'"description":"Greet","dependencies":[]}],"revision_of":null}',
        ),
        (
            "libs.domain.task:Task.SubtaskDispatched",
            b'{"timestamp":"2024-11-02T08:00:01.250000Z","workspace_id":"ws-store","subtask_id":"aaaa0001",'
            b'"agent_type":"codegen","description":"Greet","files":{"a.py":"print(1)\\n","b.py":{"digest":'
            b'"sha256:abababababababababababababababababababababababababababababababab","size":12}},'
            b'"config":{"model":"m","provider":"anthropic"},"attempt":1}',
        ),
    ]
    store.recorder.insert_events(
        [StoredEvent(task_id, version, topic, state) for version, (topic, state) in enumerate(rows, start=1)]
    )

    task = store.load_many([task_id])[task_id]

    assert isinstance(task, Task) and (task.status, task.dispatched) == ("assigned", ["aaaa0001"])
    assert task.subtasks[0].agent_type == "codegen" and task.request["repo"]["files"] == {"a.py": "print(1)\n"}
    submitted, dispatched = store.read(store.head() - 2)
    assert dispatched.payload["files"] == {
        "a.py": "print(1)\n",
        "b.py": {"digest": "sha256:" + "ab" * 32, "size": 12},
    }
    assert submitted.occurred_at == 1730534400500 and dispatched.occurred_at == 1730534401250
    # Saving what came after it appends the same flat JSON.
    task.start()
    store.save([task])
    (started,) = store.read(store.head() - 1)
    assert started.type == "task.started" and started.payload == {} and started.version == 3


def test_read_pages_by_after_limit_and_stop(store: EventStore) -> None:
    for i in range(4):
        store.save([new_task(f"task {i}")])
    seqs = [e.seq for e in store.read(0)]
    assert len(seqs) == 8

    assert [e.seq for e in store.read(seqs[2], limit=3)] == seqs[3:6]
    assert [e.seq for e in store.read(seqs[2], stop=seqs[4])] == seqs[3:5]
    assert store.read(seqs[-1]) == []


async def test_one_listener_wakes_each_of_its_followers_on_an_append(store: EventStore, postgres_url: str) -> None:
    listener = Listener(postgres_url, EVENTS_CHANNEL)
    follower = listener.follower()
    await listener.start()
    try:
        for wakeups in (listener, follower):
            await wakeups.wait(timeout=5.0)  # the wake-up each gets on start: read what is there
        waits = [asyncio.create_task(w.wait(timeout=10.0)) for w in (listener, follower)]
        await asyncio.sleep(0.2)
        assert not any(w.done() for w in waits)  # nothing appended: nobody is woken

        started = time.monotonic()
        await asyncio.to_thread(store.save, [new_task()])
        await asyncio.gather(*waits)

        assert time.monotonic() - started < 5.0  # woken by the NOTIFY, not by the timeout
    finally:
        await listener.stop()


def test_kept_aggregates_hold_what_their_log_rebuilds_at_every_step(keeping: EventStore, postgres_url: str) -> None:
    # Services decide on kept objects (invariant 1 rests on them equalling the log): a command
    # that set state outside an event would make the two differ here.
    fresh = EventStore(postgres_url)

    def step(aggregate_id: uuid.UUID, change: Any) -> None:
        kept = keeping.load_many([aggregate_id])[aggregate_id]
        change(kept)
        keeping.save([kept])
        if not getattr(kept, "settled", False):
            assert keeping.load_many([aggregate_id])[aggregate_id] is kept  # kept, not rebuilt
            keeping.save([kept])
        assert state(kept) == state(fresh.load_many([aggregate_id])[aggregate_id])

    def succeed(task: Task) -> None:
        subtask = next(s for s in task.subtasks if s.id in task.dispatched and s.id not in task.succeeded)
        output = RunOutput(files={"src/a.py": "A = 1\n"})
        result = SubtaskResult(
            subtask_id=subtask.id, agent_type=subtask.agent_type, success=True, output=output, duration_ms=1
        )
        task.record_success(subtask.id, f"run-{subtask.id}", result)
        task.dispatch_ready()

    try:
        task = new_task()
        keeping.save([task])
        for change in (Task.start, succeed, succeed, Task.request_review, lambda t: t.approve(None)):
            step(task.id, change)
        step(task.id, lambda t: t.complete("https://github.example/pull/1", None))

        ledger = Ledger.open(WORKSPACE, str(task.id))
        keeping.save([ledger])
        for run in ("run-1", "run-2"):
            step(ledger.id, lambda led, run=run: led.charge(run, "s", "m", 1000, 200, 0, 0, 0.006, 40, 3, True))

        gate = Gate.open_review(WORKSPACE, str(task.id))
        keeping.save([gate])
        step(gate.id, lambda g: g.decide("approve", "looks right"))
    finally:
        fresh.close()


def test_read_of_returns_only_one_event_class_after_a_seq(store: EventStore) -> None:
    first, second = new_task(), new_task()
    store.save([first])
    after = store.head()
    store.save([second])
    second.start()  # assigned -> running: one task.started, the only one after `after`
    store.save([second])

    started = store.read_of(Task.Started, after)
    assert [(e.type, e.aggregate_id) for e in started] == [("task.started", str(second.id))]
    assert store.read_of(Task.Started, started[0].seq) == []
    assert [e.type for e in store.read_of(Task.Submitted, 0)] == ["task.submitted", "task.submitted"]


def test_an_event_larger_than_an_event_may_be_is_refused_and_nothing_of_its_batch_is_stored(store: EventStore) -> None:
    """Events name files by digest, so none comes near the bound (1 MiB): one that does (an
    aggregate given contents inline, as here) is refused, and every event fits a bus message."""
    limit = recorder_module.MAX_EVENT_BYTES
    assert limit == 1024 * 1024

    def with_a_file_of(size: int) -> Task:
        req = request()
        req["repo"]["files"]["big.txt"] = "x" * size
        return Task.submit(uuid.uuid4(), WORKSPACE, req, [])

    head = store.head()

    with pytest.raises(EventTooLarge, match="larger than"):
        store.save([new_task(), with_a_file_of(limit)])

    assert store.head() == head, "nothing of the batch was appended"
    store.save([with_a_file_of(limit - 4096)])  # large, but it fits
    assert store.head() > head
