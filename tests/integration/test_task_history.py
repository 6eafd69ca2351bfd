"""Spec 003's task list and history on a real PostgreSQL, projected from a log the real aggregates
made: filters and keyset pages over `rm_tasks`, the transitions in `rm_task_history` newest
first, a purge taking the history with its tasks, and a rebuild giving the same rows."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from libs.domain.task import Task
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.readmodels import projector, schema, task_listing
from libs.readmodels.task_listing import TaskFilter
from services.planner.plans import plan
from tests.factories import stored_request

pytestmark = pytest.mark.integration

WS, OTHER = "ws-history", "ws-history-other"


def submitted(description: str, agent_type: str = "codegen", workspace: str = WS, **repo: str) -> Task:
    task_id = uuid.uuid4()
    request = stored_request(description, agent_type)
    request["repo"] = {**request["repo"], **repo}
    return Task.submit(task_id, workspace, request, plan(str(task_id), agent_type, description))


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


@pytest.fixture
async def pool(postgres_url: str, conn: psycopg.Connection) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(postgres_url, min_size=1, max_size=4, kwargs={"autocommit": True}) as opened:
        yield opened


class Tasks:
    """Five tasks of WS, each its own write (so each its own `created_at`), one of OTHER."""

    def __init__(self, store: EventStore) -> None:
        def made(task: Task) -> Task:
            store.save([task])
            time.sleep(0.003)  # distinct submission times (its event's), as tasks submitted apart have
            return task

        self.running = made(submitted("Running", "codegen", owner="acme", repo="api"))
        self.failed = made(submitted("Failed", "review", owner="Acme", repo="API"))
        self.stopped = made(submitted("Stopped", "codegen", owner="acme", repo="web"))
        self.queued = made(submitted("Queued", "review"))
        self.pending = made(submitted("Pending", "test", owner="other", repo="api"))
        self.elsewhere = made(submitted("Elsewhere", workspace=OTHER))
        self.running.dispatch_ready()
        self.running.start()
        self.failed.dispatch_ready()
        self.failed.start()
        self.failed.attempt_failed(self.failed.subtasks[0].id, "run-1", 1, "provider exploded", False, None)
        self.stopped.stop("stopped on request")
        store.save([self.running, self.failed, self.stopped])

    def ids(self, *tasks: Task) -> list[str]:
        return [str(t.id) for t in tasks]


@pytest.fixture
def tasks(store: EventStore, conn: psycopg.Connection) -> Tasks:
    made = Tasks(store)
    projector.catch_up(store, conn)
    return made


async def all_pages(pool: AsyncConnectionPool, only: TaskFilter, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    after: tuple[int, str] | None = None
    while True:
        found = await task_listing.tasks(pool, WS, only, after, limit)
        pages.append([t["id"] for t in found])
        if len(found) < limit:
            return pages
        after = (found[-1]["queuedAt"], found[-1]["id"])


async def test_the_list_is_the_workspaces_tasks_newest_first_in_pages_that_neither_repeat_nor_skip(
    tasks: Tasks, pool: AsyncConnectionPool
) -> None:
    newest_first = tasks.ids(tasks.pending, tasks.queued, tasks.stopped, tasks.failed, tasks.running)

    assert await all_pages(pool, TaskFilter(), 2) == [newest_first[:2], newest_first[2:4], newest_first[4:]]
    assert await all_pages(pool, TaskFilter(), 50) == [newest_first]


@pytest.mark.parametrize(
    ("only", "expected"),
    [
        (TaskFilter(statuses=["failed", "cancelled"]), ["stopped", "failed"]),
        (TaskFilter(statuses=["running"]), ["running"]),
        (TaskFilter(agent_type="review"), ["queued", "failed"]),
        (TaskFilter(repository=("ACME", "api")), ["queued", "failed", "running"]),  # any case, as GitHub
        (TaskFilter(repository=("acme", "web"), statuses=["cancelled"]), ["stopped"]),
        (TaskFilter(repository=("nobody", "api")), []),
    ],
)
async def test_each_filter_narrows_the_list(
    tasks: Tasks, pool: AsyncConnectionPool, only: TaskFilter, expected: list[str]
) -> None:
    found = await task_listing.tasks(pool, WS, only, None, 50)

    assert [t["id"] for t in found] == tasks.ids(*(getattr(tasks, name) for name in expected))


async def test_since_keeps_the_tasks_submitted_at_or_after_it(tasks: Tasks, pool: AsyncConnectionPool) -> None:
    stopped = await task_listing.task_summary(pool, WS, str(tasks.stopped.id))
    assert stopped is not None

    found = await task_listing.tasks(pool, WS, TaskFilter(since=stopped["queuedAt"]), None, 50)

    assert [t["id"] for t in found] == tasks.ids(tasks.pending, tasks.queued, tasks.stopped)


async def test_a_summary_has_the_status_times_and_error_and_only_in_its_workspace(
    tasks: Tasks, pool: AsyncConnectionPool
) -> None:
    failed = await task_listing.task_summary(pool, WS, str(tasks.failed.id))

    assert failed is not None and failed["status"] == "failed"
    assert failed["error"] == f"subtask {tasks.failed.subtasks[0].id} failed (not retryable): provider exploded"
    assert failed["queuedAt"] <= failed["startedAt"] <= failed["completedAt"]
    assert failed["repo"] == {"owner": "Acme", "repo": "API", "branch": "agent/validation", "baseBranch": "main"}
    assert await task_listing.task_summary(pool, OTHER, str(tasks.failed.id)) is None


async def test_the_history_is_every_transition_newest_first_with_the_times_as_they_stood(
    store: EventStore, tasks: Tasks, conn: psycopg.Connection, pool: AsyncConnectionPool
) -> None:
    found = await task_listing.history(pool, WS, None, None, 100)

    assert [t["seq"] for t in found] == sorted((t["seq"] for t in found), reverse=True)
    of_failed = [(t["previousStatus"], t["status"]) for t in found if t["taskId"] == str(tasks.failed.id)]
    assert of_failed == [("running", "failed"), ("assigned", "running"), ("pending", "assigned"), (None, "pending")]
    (stop,) = [t for t in found if t["taskId"] == str(tasks.stopped.id) and t["status"] == "cancelled"]
    assert (stop["error"], stop["startedAt"]) == ("stopped on request", None)
    assert stop["completedAt"] == stop["occurredAt"]
    assert str(tasks.elsewhere.id) not in {t["taskId"] for t in found}
    # A page at a time, and one task's alone.
    first = await task_listing.history(pool, WS, None, None, 3)
    rest = await task_listing.history(pool, WS, None, first[-1]["seq"], 100)
    assert first + rest == found
    only = await task_listing.history(pool, WS, str(tasks.failed.id), None, 100)
    assert [(t["previousStatus"], t["status"]) for t in only] == of_failed


def dump(conn: psycopg.Connection) -> list[Any]:
    return conn.execute("SELECT t::text FROM rm_task_history t ORDER BY seq").fetchall()


@pytest.mark.parametrize("batch", [projector.BATCH, 1, 3])
def test_a_rebuild_writes_the_same_history(
    store: EventStore, tasks: Tasks, conn: psycopg.Connection, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = dump(conn)
    assert len(live) == 3 + 4 + 2 + 1 + 1 + 1  # running, failed, stopped, queued, pending, elsewhere

    monkeypatch.setattr(projector, "BATCH", batch)
    schema.drop(conn)
    schema.create(conn)
    projector.catch_up(store, conn)

    assert dump(conn) == live


def test_a_purge_takes_the_history_with_the_tasks_it_drops(
    store: EventStore, tasks: Tasks, conn: psycopg.Connection
) -> None:
    workspace = Workspace.create(WS, "history")
    store.save([workspace])
    workspace.purge(["tasks"], [str(tasks.running.id), str(tasks.queued.id), str(tasks.pending.id)], [])
    store.save([workspace])
    kept = submitted("Submitted after the purge")
    store.save([kept])

    projector.catch_up(store, conn)

    rows = conn.execute("SELECT DISTINCT workspace_id, task_id::text FROM rm_task_history").fetchall()
    assert sorted(rows) == sorted([(WS, str(kept.id)), (OTHER, str(tasks.elsewhere.id))])
