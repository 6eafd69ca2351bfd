"""Container workers' records on a real PostgreSQL: a run kept for a container is claimed by
the container's session only, and by name; the worker's report is checked against the run's
callback token, recorded once, and agrees with the run (a failure ends a run still held, or
never claimed); the read model lists the machines not destroyed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import ClaimRunCommand, LeaseCommand, ReportWorker
from contracts.payloads.worker_machine import WorkerMachineStarted
from libs.config import Settings
from libs.domain.agent_session import AgentSession
from libs.domain.run import FAILED, SUCCEEDED, Run, run_id_for
from libs.domain.task import Task
from libs.domain.worker_machine import WorkerMachine, callback_hash
from libs.eventstore.store import EventStore
from libs.leases import heartbeats
from libs.pricing import PriceTable
from libs.readmodels import projector, schema, worker_machines
from services.executor import reports, under_lease
from services.executor.claims import claim_next
from services.planner.plans import plan
from tests.factories import stored_request

pytestmark = pytest.mark.integration

WS = "ws-containers"
TOKEN = "callback-token-of-the-run"


@pytest.fixture
def conn(postgres_url: str, store: EventStore) -> Iterator[psycopg.Connection]:
    heartbeats.create(store)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


@pytest.fixture
def settings(postgres_url: str) -> Settings:
    return Settings(service="executor", database_url=postgres_url)


DISPATCHES: dict[str, int] = {}  # task id -> the seq of its dispatch


def fly_task(store: EventStore) -> tuple[Task, str]:
    """A task on the `fly` runner, its one subtask dispatched; and that run's id."""
    request = stored_request("in a container", "review")
    request["config"]["runner"] = "fly"
    task_id = uuid.uuid4()
    task = Task.submit(task_id, WS, request, plan(str(task_id), "review", "in a container"))
    task.dispatch_ready()
    DISPATCHES[str(task_id)] = store.save([task])  # the dispatch is the save's last event
    return task, str(run_id_for(str(task_id), task.subtasks[0].id, 1))


def session(store: EventStore, name: str) -> AgentSession:
    made, _ = AgentSession.create(WS, name, "reviewer", "m", "anthropic", ["review"])
    store.save([made])
    return made


def machine_for(store: EventStore, task: Task, run_id: str, holder: AgentSession, claim_by: int = 0) -> WorkerMachine:
    machine = WorkerMachine.start(
        WS,
        WorkerMachineStarted(
            task_id=str(task.id),
            run_id=run_id,
            subtask_id=task.subtasks[0].id,
            dispatch_seq=DISPATCHES[str(task.id)],
            app="acme-workers",
            region="ams",
            machine_id="m-1",
            machine_name=f"run-{run_id}",
            session_id=str(holder.id),
            callback_token_hash=callback_hash(TOKEN),
            claim_by=claim_by or 4_000_000_000_000,
        ),
    )
    store.save([machine])
    return machine


def claimed_by_its_container(store: EventStore, conn: psycopg.Connection) -> tuple[Task, str, AgentSession, Any]:
    """A fly task whose run its container's session has claimed: the task, the run's id, the
    session, the claim."""
    task, run_id = fly_task(store)
    container = session(store, "container")
    machine_for(store, task, run_id, container)
    projector.catch_up(store, conn)
    claimed = claim(store, container, run_id)
    assert claimed is not None
    return task, run_id, container, claimed


def claim(store: EventStore, holder: AgentSession, run_id: str | None = None) -> Any:
    command = ClaimRunCommand(
        workspace_id=WS,
        session_id=str(holder.id),
        provider="",
        model="",
        agent_types=None,
        lease_ttl_s=30,
        run_id=run_id,
    )
    return claim_next(store, PriceTable({}), command)


def report(store: EventStore, settings: Settings, task: Task, run_id: str, **fields: Any) -> Any:
    body = {"run_id": run_id, "task_id": str(task.id), "token": TOKEN, "status": "failed", **fields}
    return reports.report_worker(msgspec.json.encode(ReportWorker(**body)), store, settings)


def test_a_run_kept_for_a_container_is_claimed_by_its_session_only(store: EventStore, conn: psycopg.Connection) -> None:
    task, run_id = fly_task(store)
    container, stranger = session(store, "container"), session(store, "stranger")
    machine_for(store, task, run_id, container)
    projector.catch_up(store, conn)

    assert claim(store, stranger) is None, "claim-next never hands out a run kept for a container"
    assert claim(store, container) is None, "not even to its own session unless it names the run"
    assert claim(store, stranger, run_id) is None, "naming it is not enough: it is kept for another session"
    claimed = claim(store, container, run_id)
    assert claimed is not None and str(claimed.run.id) == run_id
    assert claimed.run.session_id == str(container.id)


def test_a_report_needs_the_runs_callback_token_and_agrees_with_the_run(
    store: EventStore, conn: psycopg.Connection, settings: Settings
) -> None:
    task, run_id, _, claimed = claimed_by_its_container(store, conn)

    wrong = report(store, settings, task, run_id, token="not-the-token")
    assert wrong.error is not None and wrong.error.status == 401
    elsewhere = report(store, settings, task, str(uuid.uuid4()))
    assert elsewhere.error is not None and elsewhere.error.status == 401, "an unknown run looks like a wrong token"
    other_task = report(store, settings, task, run_id, task_id=str(uuid.uuid4()))
    assert other_task.error is not None and other_task.error.status == 400
    early = report(store, settings, task, run_id, status="succeeded")
    assert early.error is not None and (early.error.status, early.error.error) == (409, "run_not_completed")
    assert store.load(claimed.run.id).status != FAILED, "refused reports change nothing"

    failed = report(store, settings, task, run_id, error="the container ran out of memory")
    assert failed.error is None and failed.status == "recorded"
    run = store.load(claimed.run.id)
    assert isinstance(run, Run) and run.status == FAILED, "a failure ends the run its worker held"
    again = report(store, settings, task, run_id, error="the container ran out of memory")
    assert again.error is None and again.status == "unchanged"
    other = report(store, settings, task, run_id, error="something else")
    assert other.error is not None and (other.error.status, other.error.error) == (409, "report_conflict")


def test_a_worker_that_completed_its_run_reports_success_once(
    store: EventStore, conn: psycopg.Connection, settings: Settings
) -> None:
    task, run_id, container, claimed = claimed_by_its_container(store, conn)
    complete = LeaseCommand(
        verb="complete",
        workspace_id=WS,
        session_id=str(container.id),
        run_id=run_id,
        claim_token=claimed.token,
        result={"summary": "reviewed", "files": {}},
    )
    asyncio.run(under_lease.on_command(msgspec.json.encode(complete), store, False))
    assert store.load(claimed.run.id).status == SUCCEEDED

    first = report(store, settings, task, run_id, status="succeeded", metadata={"machineId": "m-1"})
    second = report(store, settings, task, run_id, status="succeeded", metadata={"machineId": "m-1"})
    assert (first.status, second.status) == ("recorded", "unchanged")
    failed_after = report(store, settings, task, run_id, status="failed")
    assert failed_after.error is not None and failed_after.error.status == 409


def test_a_worker_failing_before_its_claim_fails_the_run_for_another_attempt(
    store: EventStore, conn: psycopg.Connection, settings: Settings
) -> None:
    task, run_id = fly_task(store)
    machine_for(store, task, run_id, session(store, "container"))
    projector.catch_up(store, conn)

    answer = report(store, settings, task, run_id, error="the image would not start")
    assert answer.status == "recorded"
    run = store.load(uuid.UUID(run_id))
    assert isinstance(run, Run) and run.status == FAILED
    assert run.error == "the image would not start"


def test_the_read_model_lists_the_machines_not_destroyed(store: EventStore, conn: psycopg.Connection) -> None:
    task, run_id = fly_task(store)
    kept = machine_for(store, task, run_id, session(store, "kept"))
    other_task, other_run = fly_task(store)
    gone = machine_for(store, other_task, other_run, session(store, "gone"))
    gone.destroy("run_ended")
    store.save([gone])
    projector.catch_up(store, conn)

    live = worker_machines.live(conn, 10)
    assert [(row["run_id"], row["machine_aggregate_id"]) for row in live] == [(run_id, str(kept.id))]
