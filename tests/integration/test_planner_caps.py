"""Concurrency caps are read from the log, not from a read model: the planner counts a cap the
moment it is saved, though the projector has not reached it (here it never runs, so no read
model exists at all). The planner's store keeps aggregates between batches, as the service's
does; the gateway's and the executor's writes go through a store of their own."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import msgspec
import pytest

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.payloads.shapes import PlannedSubtask, RunOutput
from libs.domain.run import Run
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from services.planner import handlers
from services.planner.drafting import Draft
from tests.factories import task_request

pytestmark = pytest.mark.integration

WORKSPACE = "ws-caps"


def configure(store: EventStore, workspace: Workspace, config: dict[str, Any]) -> None:
    workspace.update_config(config, {**workspace.config, **config})
    store.save([workspace])


def submit(store: EventStore, *descriptions: str, **extra: Any) -> list[str]:
    command = SubmitTasksCommand(WORKSPACE, [task_request(d, **extra) for d in descriptions])
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
    run.succeed(RunOutput(files={}, summary="done"), {"input_tokens": 1, "output_tokens": 1}, 5, 1)
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
def planner(keeping_store: EventStore) -> EventStore:
    """The planner's store: it keeps the aggregates it saved, as the service's does."""
    return keeping_store


@pytest.fixture
def workspace(store: EventStore) -> Workspace:
    created = Workspace.create(WORKSPACE, "caps")
    store.save([created])
    return created


def test_a_cap_counts_from_the_first_submission_after_it_is_saved(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    reads: list[list[UUID]] = []
    real = planner.load_many

    def counted(ids: list[UUID]) -> dict[UUID, Any]:
        reads.append(list(ids))
        return real(ids)

    planner.load_many = counted  # type: ignore[method-assign]
    first, second = submit(planner, "First", "Second")

    dispatched, queued = dispatched_and_queued(events_since(store, head))
    assert [task for task, _ in dispatched] == [first]
    assert [task for task, _ in queued] == [second]
    assert len(reads) == 1, "the cap and the schedule come with the submission's one read"


def test_a_freed_slot_goes_to_the_subtask_that_waited_longest(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    first, second = submit(planner, "First", "Second")
    (started,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]

    appended = handle(planner, [run_succeeded(store, started)])

    dispatched, queued = dispatched_and_queued(appended)
    # The second task's codegen waited first; the first task's test, ready now, queues behind it.
    assert [task for task, _ in dispatched] == [second]
    assert [task for task, _ in queued] == [first]


def test_lifting_the_cap_starts_what_waits_though_no_read_model_has_it(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})
    head = store.head()
    _, second = submit(planner, "First", "Second")
    configure(store, workspace, {"maxConcurrentSubtasks": None})
    (lifted,) = [e for e in events_since(store, head) if e.type == "workspace.config_updated"]

    appended = handle(planner, [lifted])

    dispatched, queued = dispatched_and_queued(appended)
    assert [task for task, _ in dispatched] == [second] and queued == []
    # And later submissions start at once, however many run.
    head = store.head()
    later = submit(planner, "Third", "Fourth")
    appended = events_since(store, head)
    dispatched, queued = dispatched_and_queued(appended)
    assert [task for task, _ in dispatched] == later and queued == []
    # Still counted: a cap set again finds them running.
    assert [e.payload["slot"].split("/")[0] for e in appended if e.type == "schedule.started"] == later


def test_an_uncapped_workspace_keeps_no_schedule(store: EventStore, planner: EventStore, workspace: Workspace) -> None:
    head = store.head()
    submit(planner, "First", "Second", "Third")
    appended = events_since(store, head)
    assert not [e for e in appended if e.type.startswith("schedule.")]
    assert len([e for e in appended if e.type == "task.subtask_dispatched"]) == 3


class GivenDraft(handlers.Drafts):
    """Drafting without a model: the plan is given, and `meanwhile` runs while it is drafted."""

    def __init__(self, subtasks: list[PlannedSubtask], meanwhile: Callable[[], Awaitable[None]] | None = None) -> None:
        super().__init__()
        self.subtasks, self.meanwhile = subtasks, meanwhile

    async def get(self, providers: Any, task: Any) -> Draft:
        if self.meanwhile is not None:
            await self.meanwhile()
        return Draft(self.subtasks, "model", None, None, 5)


TWO_AT_ONCE = [
    PlannedSubtask(id="a", agent_type="codegen", description="One side", dependencies=[]),
    PlannedSubtask(id="b", agent_type="codegen", description="Other side", dependencies=[]),
]


async def draft(planner: EventStore, store: EventStore, drafts: handlers.Drafts) -> list[EventEnvelope]:
    """Submits a task with a drafted plan and drafts it, as planner-drafts does; what it appended."""
    head = store.head()
    (task_id,) = submit(planner, "Drafted", config={"planner": "llm"})
    (requested,) = [e for e in events_since(store, head) if e.type == "task.plan_requested"]
    head = store.head()
    planner.save(await handlers.on_plan_request(requested, planner, None, drafts))  # type: ignore[arg-type]
    return [e for e in events_since(store, head) if e.aggregate_id == task_id]


async def test_a_drafted_plans_first_subtasks_take_slots_under_a_cap_read_from_the_log(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 1})

    appended = await draft(planner, store, GivenDraft(TWO_AT_ONCE))

    dispatched, queued = dispatched_and_queued(appended)
    assert len(dispatched) == 1 and len(queued) == 1


async def test_runs_ending_while_a_plan_is_drafted_do_not_make_its_save_conflict(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    configure(store, workspace, {"maxConcurrentSubtasks": 2})
    head = store.head()
    submit(planner, "Running")
    (running,) = [e for e in events_since(store, head) if e.type == "task.subtask_dispatched"]

    async def a_run_ends() -> None:
        # The model thinks; meanwhile a run ends and a planner batch moves the Schedule on.
        succeeded = await asyncio.to_thread(run_succeeded, store, running)
        await asyncio.to_thread(handle, planner, [succeeded])

    appended = await draft(planner, store, GivenDraft(TWO_AT_ONCE, a_run_ends))

    # Saved at the first try: one slot was free (the ended run's test took the other).
    dispatched, queued = dispatched_and_queued(appended)
    assert len(dispatched) == 1 and len(queued) == 1
