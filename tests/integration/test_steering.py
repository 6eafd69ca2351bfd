"""The planner's stop and retry commands (spec 003) on a real event store: what each appends, in
one write, and what it refuses, changing nothing. The planner's store keeps aggregates between
commands and batches, as the service's does; the executor's writes go through a store of its own."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest

from contracts.commands import CommandReply, RetryTaskCommand, StopTaskCommand
from contracts.events import EventEnvelope
from libs.domain.base import derived_id
from libs.domain.run import Run
from libs.domain.task import Task
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from services.planner import steering
from tests.integration.test_planner_caps import configure, dispatched_and_queued, events_since, handle, submit

pytestmark = pytest.mark.integration

WORKSPACE = "ws-caps"  # the one `submit` submits to


@pytest.fixture
def planner(keeping_store: EventStore) -> EventStore:
    return keeping_store


def stop(planner: EventStore, task_id: str, workspace: str = WORKSPACE) -> CommandReply:
    return steering.stop_task(msgspec.json.encode(StopTaskCommand(workspace, task_id)), planner)


def retry(planner: EventStore, task_id: str, workspace: str = WORKSPACE) -> CommandReply:
    return steering.retry_task(msgspec.json.encode(RetryTaskCommand(workspace, task_id)), planner)


def kinds(events: list[EventEnvelope]) -> list[tuple[str, str]]:
    return [(e.type, e.aggregate_id) for e in events]


def run_ends(store: EventStore, dispatched: EventEnvelope, retryable: bool = False) -> EventEnvelope:
    """The executor's part: the dispatched subtask's run starts and fails."""
    p = dispatched.payload
    task_id, attempt = dispatched.aggregate_id, p["attempt"]
    run = Run.start(WORKSPACE, task_id, p["subtask_id"], p["agent_type"], attempt, "anthropic", "m")
    run.fail("provider exploded", {"input_tokens": 1, "output_tokens": 1}, 5, 1, retryable=retryable)
    head = store.head()
    store.save([run])
    (failed,) = [e for e in events_since(store, head) if e.type == "run.failed"]
    return failed


def failed_task(store: EventStore, planner: EventStore, description: str = "Fails", **extra: Any) -> str:
    head = store.head()
    (task_id,) = submit(planner, description, **extra)
    (dispatched,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]
    handle(planner, [run_ends(store, dispatched)])
    assert isinstance(task := store.load(uuid.UUID(task_id)), Task) and task.status == "failed"
    return task_id


def test_a_stop_cancels_the_task_and_its_waiting_children_in_one_write(store: EventStore, planner: EventStore) -> None:
    (parent,) = submit(planner, "Parent")
    (child,) = submit(planner, "Child", parentTaskId=parent)
    head = store.head()

    reply = stop(planner, parent)

    assert reply.error is None and (reply.task_ids, reply.status) == ([parent], "cancelled")
    appended = events_since(store, head)
    assert kinds(appended) == [("task.cancelled", parent), ("task.cancelled", child)]
    assert appended[0].payload == {"reason": "stopped on request"}
    assert appended[1].payload == {"reason": f"parent task {parent} cancelled: stopped on request"}
    assert reply.seq == appended[-1].seq


def test_a_stopped_tasks_queued_subtask_never_starts_and_its_place_goes_to_the_next(
    store: EventStore, planner: EventStore
) -> None:
    workspace = Workspace.create(WORKSPACE, "caps")
    store.save([workspace])
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    _, stopped, third = submit(planner, "First", "Stopped", "Third")
    (running,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]
    assert stop(planner, stopped).error is None

    appended = handle(planner, [run_ends(store, running)])

    dispatched, _ = dispatched_and_queued(appended)
    assert [task for task, _ in dispatched] == [third], "the stopped task gave its place up"


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_a_finished_task_is_not_stopped_and_nothing_is_written(
    store: EventStore, planner: EventStore, how: str
) -> None:
    task_id = failed_task(store, planner)
    if how == "cancelled":
        (task_id,) = submit(planner, "Stopped once")
        assert stop(planner, task_id).error is None
    head = store.head()

    reply = stop(planner, task_id)

    assert reply.error is not None
    assert (reply.error.status, reply.error.error) == (409, "invalid_state_transition")
    assert f"is '{how}'" in reply.error.message
    assert events_since(store, head) == []


@pytest.mark.parametrize("command", [stop, retry])
def test_another_workspaces_task_or_no_task_is_a_404_and_nothing_is_written(
    store: EventStore, planner: EventStore, command: Any
) -> None:
    task_id = failed_task(store, planner)
    head = store.head()

    for workspace, wanted in [("ws-other", task_id), (WORKSPACE, str(uuid.uuid4())), (WORKSPACE, "not-an-id")]:
        reply = command(planner, wanted, workspace)
        assert reply.error is not None and reply.error.status == 404, (workspace, wanted)
    assert events_since(store, head) == []


def test_a_retry_runs_the_failed_task_again_as_a_new_task_linked_both_ways(
    store: EventStore, planner: EventStore
) -> None:
    task_id = failed_task(store, planner)
    head = store.head()

    reply = retry(planner, task_id)

    retry_id = str(derived_id("retry", uuid.UUID(task_id)))
    assert reply.error is None and (reply.task_ids, reply.status) == ([retry_id], "created")
    appended = events_since(store, head)
    assert kinds(appended) == [
        ("task.retried", task_id),
        ("task.submitted", retry_id),
        ("task.subtask_dispatched", retry_id),
    ]
    assert appended[0].payload == {"retry_id": retry_id}
    assert appended[1].payload["retry_of"] == task_id
    old = store.load(uuid.UUID(task_id))
    assert isinstance(old, Task)
    assert appended[1].payload["request"] == old.request, "the same request, its files by the same digests"
    assert appended[2].payload["attempt"] == 1


def test_a_retry_sent_again_or_twice_at_once_makes_one_task(store: EventStore, planner: EventStore) -> None:
    task_id = failed_task(store, planner)
    head = store.head()

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda _: retry(planner, task_id), range(2)))
    again = retry(planner, task_id)

    assert {r.task_ids[0] for r in [*replies, again]} == {str(derived_id("retry", uuid.UUID(task_id)))}
    assert sorted(r.status or "" for r in replies) == ["created", "existing"] and again.status == "existing"
    assert [e.type for e in events_since(store, head)].count("task.submitted") == 1


def test_a_task_that_has_not_failed_or_was_revised_is_not_retried(store: EventStore, planner: EventStore) -> None:
    (running,) = submit(planner, "Running")
    head = store.head()

    reply = retry(planner, running)

    assert reply.error is not None and reply.error.status == 409
    assert "is 'assigned': it cannot be retried (only a failed or cancelled task can be)" in reply.error.message
    assert events_since(store, head) == []


def test_a_child_cancelled_with_its_parent_is_retried_on_the_parents_retry(
    store: EventStore, planner: EventStore
) -> None:
    head = store.head()
    (parent,) = submit(planner, "Parent")
    (child,) = submit(planner, "Child", parentTaskId=parent)
    (dispatched,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]
    handle(planner, [run_ends(store, dispatched)])  # the parent fails, the child is cancelled with it
    head = store.head()

    refused = retry(planner, child)

    assert refused.error is not None and refused.error.status == 409
    assert f"waits for its parent task {parent}, which is failed" in refused.error.message
    assert events_since(store, head) == []

    parent_retry = retry(planner, parent).task_ids[0]
    head = store.head()
    child_retry = retry(planner, child)

    assert child_retry.error is None
    appended = events_since(store, head)
    new_child = child_retry.task_ids[0]
    linked = [("task.retried", child), ("task.submitted", new_child), ("task.child_linked", parent_retry)]
    assert kinds(appended) == linked
    assert appended[1].payload["request"]["parentTaskId"] == parent_retry
