"""A budget raised resumes the workspace's paused tasks: those the read model shows paused, and
those paused after the projector's position, which only the log holds yet."""

from __future__ import annotations

import msgspec
import psycopg
import pytest

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.payloads.shapes import BudgetCap
from libs.domain.run import Run
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.readmodels import projector
from services.planner import handlers
from tests.factories import task_request

pytestmark = pytest.mark.integration

WORKSPACE = "ws-budgets"
CAP = BudgetCap(cap="workspace", limit_usd=0.01, spent_usd=0.01, estimate_usd=0.02)


@pytest.fixture
def planner(keeping_store: EventStore, read_models: None) -> EventStore:
    """The planner's store, keeping aggregates as the service's does; the read models exist
    (created empty), and the projector runs only when a test says so."""
    return keeping_store


@pytest.fixture
def workspace(store: EventStore) -> Workspace:
    created = Workspace.create(WORKSPACE, "budgets")
    configure(store, created, {"budgetUsd": 0.01, "onBudgetExceeded": "pause"})
    return created


def configure(store: EventStore, workspace: Workspace, changes: dict[str, object]) -> EventEnvelope:
    head = store.head()
    workspace.update_config(changes, {**workspace.config, **changes})
    store.save([workspace])
    (updated,) = [e for e in store.read(head, 100) if e.type == "workspace.config_updated"]
    return updated


def handle(planner: EventStore, events: list[EventEnvelope]) -> list[EventEnvelope]:
    head = planner.head()
    planner.save(handlers.on_events(events, planner))
    return planner.read(head, 1000)


def paused_task(store: EventStore, planner: EventStore, workspace_id: str = WORKSPACE) -> str:
    """A task whose first run the budget stopped: the planner paused it."""
    head = store.head()
    command = SubmitTasksCommand(workspace_id, [task_request("Over budget")])
    reply = handlers.submit_tasks(msgspec.json.encode(command), planner)
    assert isinstance(reply, CommandReply) and reply.task_ids, reply
    (dispatched,) = [e for e in store.read(head, 100) if e.type == "task.subtask_dispatched"]
    p = dispatched.payload
    run = Run.start(workspace_id, dispatched.aggregate_id, p["subtask_id"], p["agent_type"], 1, "anthropic", "m")
    run.stop_for_budget(CAP, "pause", {}, 1, 0, None)
    head = store.head()
    store.save([run])
    (stopped,) = [e for e in store.read(head, 100) if e.type == "run.budget_stopped"]
    assert [e.type for e in handle(planner, [stopped])] == ["task.paused"]
    return reply.task_ids[0]


def resumed(appended: list[EventEnvelope]) -> list[tuple[str, str]]:
    return [(e.aggregate_id, e.type) for e in appended if e.type in ("task.resumed", "task.subtask_dispatched")]


def resumed_tasks(appended: list[EventEnvelope]) -> set[str]:
    return {e.aggregate_id for e in appended if e.type == "task.resumed"}


def project(store: EventStore, postgres_url: str) -> None:
    """The projector catches up once (then stops again)."""
    with psycopg.connect(postgres_url) as conn:
        projector.catch_up(store, conn)


def test_a_task_paused_past_the_projectors_position_is_resumed_from_the_log(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    task_id = paused_task(store, planner)  # the projector has not run: no read model shows it

    appended = handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])

    assert resumed(appended) == [(task_id, "task.resumed"), (task_id, "task.subtask_dispatched")]


def test_a_task_the_read_model_shows_paused_is_resumed(
    store: EventStore, planner: EventStore, workspace: Workspace, postgres_url: str
) -> None:
    task_id = paused_task(store, planner)
    project(store, postgres_url)
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT status FROM rm_tasks WHERE task_id = %s", (task_id,)).fetchone()
    assert row is not None and row[0] == "paused"

    appended = handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])

    assert resumed(appended) == [(task_id, "task.resumed"), (task_id, "task.subtask_dispatched")]


def test_a_change_that_is_not_about_budgets_resumes_nothing(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    paused_task(store, planner)

    appended = handle(planner, [configure(store, workspace, {"reviewPolicy": "auto_approve"})])

    assert resumed(appended) == []


def test_tasks_paused_on_both_sides_of_the_projectors_position_are_all_resumed(
    store: EventStore, planner: EventStore, workspace: Workspace, postgres_url: str
) -> None:
    before = paused_task(store, planner)
    project(store, postgres_url)
    after = paused_task(store, planner)  # past the position: only in the log

    appended = handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])

    assert resumed_tasks(appended) == {before, after}


def test_the_log_past_the_position_is_read_page_by_page(
    store: EventStore, planner: EventStore, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handlers, "LOG_PAGE", 1)
    paused = {paused_task(store, planner) for _ in range(3)}

    appended = handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])

    assert resumed_tasks(appended) == paused


def test_another_workspaces_paused_task_stays_paused(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    other = Workspace.create("ws-other", "other")
    configure(store, other, {"budgetUsd": 0.01, "onBudgetExceeded": "pause"})
    mine, theirs = paused_task(store, planner), paused_task(store, planner, "ws-other")

    appended = handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])

    assert resumed_tasks(appended) == {mine} and theirs not in resumed_tasks(appended)


def test_a_task_resumed_already_is_not_resumed_again(
    store: EventStore, planner: EventStore, workspace: Workspace
) -> None:
    task_id = paused_task(store, planner)
    assert resumed_tasks(handle(planner, [configure(store, workspace, {"budgetUsd": 5.0})])) == {task_id}

    # Its task.paused is still in the log past the position; the task itself is running.
    assert handle(planner, [configure(store, workspace, {"budgetUsd": 6.0})]) == []
