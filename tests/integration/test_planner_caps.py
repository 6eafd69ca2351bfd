"""Concurrency caps are read from the log, not from a read model: the planner counts a cap the
moment it is saved, though the projector has not reached it (here it never runs, so no read
model exists at all)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from libs.domain.run import Run
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from services.planner import handlers
from tests.factories import task_request

pytestmark = pytest.mark.integration

WORKSPACE = "ws-caps"


def configure(store: EventStore, workspace: Workspace, config: dict[str, Any]) -> None:
    workspace.update_config(config, {**workspace.config, **config})
    store.save([workspace])


def submit(store: EventStore, *descriptions: str) -> list[str]:
    command = SubmitTasksCommand(WORKSPACE, [task_request(d) for d in descriptions])
    reply = handlers.submit_tasks(msgspec.json.encode(command), store)
    assert isinstance(reply, CommandReply) and reply.error is None, reply
    return reply.task_ids or []


def events_since(store: EventStore, after: int) -> list[EventEnvelope]:
    return store.read(after, 1000)


def dispatched_and_queued(events: list[EventEnvelope]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    def pick(kind: str) -> list[tuple[str, str]]:
        return [(e.aggregate_id, e.payload["subtask_id"]) for e in events if e.type == kind]

    return pick("task.subtask_dispatched"), pick("task.subtask_queued")


def run_succeeded(store: EventStore, dispatched: EventEnvelope) -> EventEnvelope:
    """The executor's part, in short: the dispatched subtask's run starts and succeeds."""
    p = dispatched.payload
    config = p["config"]
    run = Run.start(WORKSPACE, dispatched.aggregate_id, p["subtask_id"], p["agent_type"], 1, config["provider"], "m")
    run.succeed({"files": {}, "summary": "done"}, {"input_tokens": 1, "output_tokens": 1}, 5, 1)
    head = store.head()
    store.save([run])
    (succeeded,) = [e for e in events_since(store, head) if e.type == "run.succeeded"]
    return succeeded


def handle(store: EventStore, events: list[EventEnvelope]) -> list[EventEnvelope]:
    """One planner batch, saved as the consumer saves it; returns what it appended."""
    head = store.head()
    store.save(handlers.on_events(events, store))
    return events_since(store, head)


@pytest.fixture
def workspace(store: EventStore) -> Workspace:
    created = Workspace.create(WORKSPACE, "caps")
    store.save([created])
    return created


def test_a_cap_counts_from_the_first_submission_after_it_is_saved(store: EventStore, workspace: Workspace) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    first, second = submit(store, "First", "Second")

    dispatched, queued = dispatched_and_queued(events_since(store, head))
    assert [task for task, _ in dispatched] == [first]
    assert [task for task, _ in queued] == [second]


def test_a_freed_slot_goes_to_the_subtask_that_waited_longest(store: EventStore, workspace: Workspace) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    first, second = submit(store, "First", "Second")
    (started,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]

    appended = handle(store, [run_succeeded(store, started)])

    dispatched, queued = dispatched_and_queued(appended)
    # The second task's codegen waited first; the first task's test, ready now, queues behind it.
    assert [task for task, _ in dispatched] == [second]
    assert [task for task, _ in queued] == [first]


def test_lifting_the_cap_starts_what_waits_though_no_read_model_has_it(store: EventStore, workspace: Workspace) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    _, second = submit(store, "First", "Second")
    configure(store, workspace, {"maxConcurrentSubtasks": None})
    (lifted,) = [e for e in events_since(store, head) if e.type == "workspace.config_updated"]

    appended = handle(store, [lifted])

    dispatched, queued = dispatched_and_queued(appended)
    assert [task for task, _ in dispatched] == [second] and queued == []
    # And later submissions start at once, however many run.
    head = store.head()
    later = submit(store, "Third", "Fourth")
    dispatched, queued = dispatched_and_queued(events_since(store, head))
    assert [task for task, _ in dispatched] == later and queued == []


def test_an_uncapped_workspace_keeps_no_schedule(store: EventStore, workspace: Workspace) -> None:
    head = store.head()
    submit(store, "First", "Second", "Third")
    appended = events_since(store, head)
    assert not [e for e in appended if e.type.startswith("schedule.")]
    assert len([e for e in appended if e.type == "task.subtask_dispatched"]) == 3
