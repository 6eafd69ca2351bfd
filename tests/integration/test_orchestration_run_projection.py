"""Orchestration runs' read models on a real PostgreSQL: a step's queued Run leaves the queue
when its run ends, and a purge takes the workspace's runs, keeps out what comes of the ones it
stopped (their failure, their steps' Runs' ends and charges), and rebuilds from the log as it was
live, however the log is cut into batches."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from contracts.files import FileRef
from contracts.payloads.orchestration_run import OrchestrationRunPaused, OrchestrationRunStepDispatched
from libs.domain.ledger import Ledger
from libs.domain.orchestration_run import PURGED, OrchestrationRun
from libs.domain.run import Claim, Run, run_id_for
from libs.domain.workspace import Workspace
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


def _live_a_purge(store: EventStore) -> dict[str, OrchestrationRun]:
    """A workspace with a run that completed, one paused at its gate and one in an agent step (its
    Run claimed and calling the model); another workspace's run; a purge that stops the two still
    going, and a run started while it was recorded (so not stopped). After it, the planner fails
    the stopped runs, the executor cancels the step's Run, and the ledger charges it."""
    done, paused, working, other = (
        started(WS, "done"),
        started(WS, "paused"),
        started(WS, "working"),
        started(OTHER, "x"),
    )
    done.complete("orch-a complete.")
    at_human_step(paused)
    dispatch = at_agent_step(working)
    at_agent_step(other)
    claim = Claim(session_id=None, lease_until=10**13, lease_ttl_s=30, token_hash="h")
    step_run = Run.start(WS, str(working.id), dispatch.subtask_id, "orchestration", 1, "anthropic", MODEL, claim=claim)
    step_run.record_model_call(1, True, 100, CALL, "tool_use", 1, None)
    workspaces = [Workspace.create(WS, "purged"), Workspace.create(OTHER, "kept")]
    store.save([*workspaces, done, paused, working, other, step_run])
    concurrent = started(WS, "concurrent")
    at_agent_step(concurrent)
    store.save([concurrent])
    workspaces[0].purge(["todos"], [str(paused.id), str(working.id)], [])
    store.save([workspaces[0]])

    for run in (paused, working):
        run.fail(PURGED, *run.step_spent)
    step_run.cancel("stopped: the workspace was purged", 300, None)
    ledger = Ledger.open(WS, str(working.id))
    ledger.charge(str(step_run.id), dispatch.subtask_id, MODEL, 1000, 200, 0, 0, 0.006, 300, 1, True)
    store.save([paused, working, step_run, ledger])
    return {"done": done, "paused": paused, "working": working, "other": other, "concurrent": concurrent}


def dump(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {table: [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1")] for table in schema.TABLES}


@pytest.mark.parametrize("batch", [projector.BATCH, 1, 5])
def test_a_purge_takes_the_workspaces_runs_and_nothing_of_the_stopped_ones_comes_back(
    store: EventStore, conn: psycopg.Connection, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _live_a_purge(store)
    monkeypatch.setattr(projector, "BATCH", batch)
    head = projector.catch_up(store, conn)

    kept = {r[0] for r in rows(conn, "SELECT run_id FROM rm_orchestration_runs")}
    assert kept == {runs["other"].run_id, runs["concurrent"].run_id}
    purged = dict(rows(conn, "SELECT task_id::text, stopped FROM rm_purged_tasks"))
    assert purged == {str(runs["done"].id): False, str(runs["paused"].id): True, str(runs["working"].id): True}
    # Their failures, the step Run's end and its charge are in the log, and in no read model.
    stopped = (str(runs["paused"].id), str(runs["working"].id))
    assert {"orchestration_run.failed", "ledger.charged"} <= {e.type for e in store.read(0)}
    feed = rows(conn, "SELECT type, aggregate_id, payload::text FROM rm_feed WHERE workspace_id = %s", WS)
    naming = [t for t, aggregate, payload in feed if any(s in aggregate or s in payload for s in stopped)]
    assert naming == ["workspace.purged"], "only the purge names them"
    assert rows(conn, "SELECT run_id FROM rm_charges WHERE workspace_id = %s", WS) == []
    queued = {r[0] for r in rows(conn, "SELECT task_id::text FROM rm_run_queue")}
    assert queued == {str(runs["other"].id), str(runs["concurrent"].id)}

    live = dump(conn)
    schema.drop(conn)
    schema.create(conn)
    assert projector.catch_up(store, conn) == head
    assert dump(conn) == live
