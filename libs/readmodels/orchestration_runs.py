"""Orchestration runs (`rm_orchestration_runs`, spec 004): a row per run, written from its
events, read for the answers of `POST .../run` (and, later, `resume`): its status, `response`,
`shared_state`, `step_history` and, while paused, `human_input_required`."""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from contracts.events import Event
from contracts.payloads.orchestration_run import (
    OrchestrationRunCompleted,
    OrchestrationRunFailed,
    OrchestrationRunPaused,
    OrchestrationRunResumed,
    OrchestrationRunStarted,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepRetried,
    OrchestrationRunStepStarted,
)
from libs.domain.orchestration_run import written

TABLE = "rm_orchestration_runs"
# The last entry of `step_history`, its fields merged with a JSON object (%s).
_LAST = "jsonb_set(step_history, ARRAY[(jsonb_array_length(step_history) - 1)::text], step_history->-1 || %s::jsonb)"
# A step's changes to a files key (`libs.domain.orchestration_run.with_changes`): the files
# written (path -> ref), then those deleted.
_CHANGE_FILES = (
    "UPDATE rm_orchestration_runs SET shared_state = jsonb_set(shared_state, ARRAY[%s], "
    "(coalesce(shared_state->%s, '{}'::jsonb) || %s::jsonb) - %s::text[]) WHERE id = %s"
)


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> dict[str, str]:
    """Few events, written as they come, in order; the runs whose status changed, and to what
    (announced with the projector's position, so a waiting request needs no query): a pause
    names its gate (`status_token`), so a resume can wait for the run to move past the one it
    answered."""
    changed: dict[str, str] = {}
    for e in events:
        match e.payload:
            case OrchestrationRunStarted() as p:
                cur.execute(
                    "INSERT INTO rm_orchestration_runs VALUES (%s, %s, %s, %s, %s, 'running', NULL, %s, '[]', NULL, "
                    "%s, %s) ON CONFLICT DO NOTHING",
                    (
                        e.aggregate_id, p.run_id, e.workspace_id, p.orchestration_id, p.digest,
                        _json(p.shared_state), e.occurred_at, e.occurred_at,
                    ),
                )  # fmt: skip
                changed[e.aggregate_id] = "running"
            case OrchestrationRunStepStarted() as p:
                entry = {"step_id": p.step_id, "step_name": p.step_name, "type": p.type, "status": "running"}
                cur.execute(
                    "UPDATE rm_orchestration_runs SET step_history = step_history || %s::jsonb, updated_at = %s "
                    "WHERE id = %s",
                    (_json([{**entry, "turns": 0, "cost_usd": 0.0}]), e.occurred_at, e.aggregate_id),
                )
            case OrchestrationRunStepRetried() as p:
                # What an attempt that ended without doing the step spent shows on the step at once.
                spent = (
                    "jsonb_build_object('turns', (step_history->-1->>'turns')::int + %s, "
                    "'cost_usd', (step_history->-1->>'cost_usd')::float8 + %s)"
                )
                cur.execute(
                    "UPDATE rm_orchestration_runs SET step_history = jsonb_set(step_history, "
                    f"ARRAY[(jsonb_array_length(step_history) - 1)::text], step_history->-1 || {spent}), "
                    "updated_at = %s WHERE id = %s",
                    (p.turns, p.cost_usd, e.occurred_at, e.aggregate_id),
                )
            case OrchestrationRunStepCompleted() as p:
                # A long answer by digest, as the aggregate holds it (`written`).
                value = {p.output: written(p)} if p.output is not None else {}
                done = {"status": "completed", "turns": p.turns, "cost_usd": p.cost_usd}
                cur.execute(
                    "UPDATE rm_orchestration_runs SET shared_state = shared_state || %s::jsonb, "
                    f"step_history = {_LAST}, updated_at = %s WHERE id = %s",
                    (_json(value), _json(done), e.occurred_at, e.aggregate_id),
                )
                if p.files_key is not None and p.changes is not None:
                    changed_files = msgspec.to_builtins(p.changes.files)
                    cur.execute(
                        _CHANGE_FILES,
                        (p.files_key, p.files_key, _json(changed_files), p.changes.deleted, e.aggregate_id),
                    )
            case OrchestrationRunPaused() as p:
                cur.execute(
                    f"UPDATE rm_orchestration_runs SET status = 'paused', human_input_required = %s::jsonb, "
                    f"step_history = {_LAST}, updated_at = %s WHERE id = %s",
                    (_json(msgspec.to_builtins(p)), _json({"status": "paused"}), e.occurred_at, e.aggregate_id),
                )
                changed[e.aggregate_id] = status_token("paused", p.gate)
            case OrchestrationRunResumed() as p:
                cur.execute(
                    "UPDATE rm_orchestration_runs SET status = 'running', shared_state = shared_state || %s::jsonb, "
                    f"human_input_required = NULL, step_history = {_LAST}, updated_at = %s WHERE id = %s",
                    (_json(p.values), _json({"status": "completed"}), e.occurred_at, e.aggregate_id),
                )
                changed[e.aggregate_id] = "running"
            case OrchestrationRunCompleted() as p:
                cur.execute(
                    "UPDATE rm_orchestration_runs SET status = 'completed', response = %s, "
                    "human_input_required = NULL, updated_at = %s WHERE id = %s",
                    (p.response, e.occurred_at, e.aggregate_id),
                )
                changed[e.aggregate_id] = "completed"
            case OrchestrationRunFailed() as p:
                # The step it failed at shows as failed, with what it spent.
                failed = {"status": "failed", "turns": p.turns, "cost_usd": p.cost_usd}
                cur.execute(
                    "UPDATE rm_orchestration_runs SET status = 'failed', response = %s, human_input_required = NULL, "
                    f"step_history = CASE WHEN step_history->-1->>'status' = 'running' THEN {_LAST} "
                    "ELSE step_history END, updated_at = %s WHERE id = %s",
                    (p.reason, _json(failed), e.occurred_at, e.aggregate_id),
                )
                changed[e.aggregate_id] = "failed"
    return changed


def status_token(status: str, gate: str | None) -> str:
    """A run's status as waiters see it: `paused:<gate>` while paused, else the status."""
    return f"{status}:{gate}" if status == "paused" else status


def purge(cur: psycopg.Cursor[Any], workspace_id: str, seq: int, stopped: list[str]) -> list[str]:
    """A purge of the workspace takes its runs that ended and those it stopped (`stopped`: the
    ones unfinished when it was asked); returns the ids of the stopped ones it took. Each is
    remembered as a purged task is, so what comes of it later (its failure, its steps' Runs'
    ends and charges) is kept out of every read model. A run started while the purge was being
    recorded stays, as such a task does."""
    cur.execute(
        "WITH gone AS (DELETE FROM rm_orchestration_runs WHERE workspace_id = %s "
        "AND (status IN ('completed', 'failed') OR id::text = ANY(%s)) RETURNING id, id::text = ANY(%s) AS stopped), "
        "remembered AS (INSERT INTO rm_purged_tasks (task_id, workspace_id, purged_at_seq, stopped) "
        "SELECT id, %s, %s, stopped FROM gone ON CONFLICT (task_id) DO NOTHING) "
        "SELECT id::text FROM gone WHERE stopped",
        (workspace_id, stopped, stopped, workspace_id, seq),
    )
    return [r[0] for r in cur.fetchall()]


async def unfinished(pool: AsyncConnectionPool, workspace_id: str) -> list[str]:
    """The workspace's runs still running or paused, by aggregate id: what a purge stops."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id::text FROM rm_orchestration_runs WHERE workspace_id = %s "
            "AND status NOT IN ('completed', 'failed') ORDER BY created_at, id",
            (workspace_id,),
        )
        return [r[0] for r in await cur.fetchall()]


_COLUMNS = "run_id, workspace_id, orchestration_id, status, response, shared_state, step_history, human_input_required"


async def run_of(pool: AsyncConnectionPool, workspace_id: str, run_uuid: str) -> dict[str, Any] | None:
    """A run of the workspace (another's is as unknown as none), by its aggregate id."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM rm_orchestration_runs WHERE id = %s AND workspace_id = %s",
            (run_uuid, workspace_id),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return dict(zip(_COLUMNS.split(", "), row, strict=True))
