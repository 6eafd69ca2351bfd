"""Orchestration runs' read models on a real PostgreSQL: a step's queued Run leaves the queue
when its run ends."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from contracts.files import FileRef
from contracts.payloads.orchestration_run import OrchestrationRunPaused, OrchestrationRunStepDispatched
from libs.domain.orchestration_run import OrchestrationRun
from libs.domain.run import run_id_for
from libs.eventstore.store import EventStore
from libs.readmodels import projector, schema

pytestmark = pytest.mark.integration

WS, OTHER = "ws-orch-runs", "ws-orch-runs-2"
DIGEST = "sha256:" + "ab" * 32
MODEL = "claude-sonnet-4-20250514"
CALL = {"input_tokens": 1000, "output_tokens": 200}


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


def started(workspace_id: str, name: str) -> OrchestrationRun:
    definition = FileRef(digest=DIGEST, size=100)
    return OrchestrationRun.start(workspace_id, f"run_orch-a_{name}", "orch-a", DIGEST, definition, "owls", "q", None)


def at_agent_step(run: OrchestrationRun) -> OrchestrationRunStepDispatched:
    """The run enters its agent step and dispatches it, as the planner does."""
    run.start_step("step-research", "Research", "agent")
    dispatch = OrchestrationRunStepDispatched(
        subtask_id="step-research@1",
        agent_type="orchestration",
        description="Research owls",
        files={},
        config={"model": MODEL, "provider": "anthropic"},
        attempt=1,
        run_id=str(run_id_for(str(run.id), "step-research@1", 1, 0)),
    )
    run.dispatch_step(dispatch)
    return dispatch


def at_human_step(run: OrchestrationRun) -> None:
    run.start_step("step-approve", "Approve", "human")
    run.pause(
        OrchestrationRunPaused(step_id="step-approve", prompt="Publish?", fields=[{"name": "ok", "type": "bool"}])
    )


def rows(conn: psycopg.Connection, sql: str, *params: object) -> list[tuple]:
    return conn.execute(sql, params).fetchall()


def test_a_queued_step_leaves_the_queue_when_its_orchestration_run_ends(
    store: EventStore, conn: psycopg.Connection
) -> None:
    failed_later, completed_at_once, going = (started(WS, n) for n in ("1", "2", "3"))
    for run in (failed_later, completed_at_once, going):
        at_agent_step(run)
    store.save([failed_later, going])
    projector.catch_up(store, conn)
    queued = {r[0] for r in rows(conn, "SELECT task_id::text FROM rm_run_queue")}
    assert queued == {str(failed_later.id), str(going.id)}

    # One ends in a later batch than its dispatch, the other in the same one.
    failed_later.fail("Cost limit exceeded: $0.60 > max $0.50")
    completed_at_once.complete("orch-a complete.")
    store.save([failed_later, completed_at_once])
    projector.catch_up(store, conn)

    queued = [r[0] for r in rows(conn, "SELECT task_id::text FROM rm_run_queue")]
    assert queued == [str(going.id)], "only the run still going has its step queued"
