"""Spec 002's queue and leases as read models: `rm_run_queue` (dispatched runs nobody holds
yet) and `rm_leases` (every claimed run's lease, from its claim to its end).

Folded from a batch's typed events in Python, then written in one statement (data-modifying
CTEs), so the projector's batch pays one round trip for both tables, whatever it holds."""

from __future__ import annotations

from typing import Any

import psycopg

from contracts.events import Event
from contracts.payloads.orchestration_run import OrchestrationRunCompleted, OrchestrationRunFailed
from contracts.payloads.run import (
    RunBudgetStopped,
    RunFailed,
    RunLeaseExpired,
    RunReleased,
    RunStarted,
    RunSucceeded,
)
from contracts.payloads.task import TaskCancelled, TaskCompleted, TaskFailed, TaskSubtaskDispatched
from contracts.payloads.workspace import WorkspacePurged
from contracts.tasks import Runner
from libs.domain.run import run_id_for
from libs.readmodels.codec import as_json

FLY = Runner.FLY.value

# A lease's status once its run ended, by the event that ended it.
ENDED = {
    RunSucceeded: "completed",
    RunLeaseExpired: "expired",
    RunFailed: "failed",
    RunBudgetStopped: "budget_stopped",
    RunReleased: "released",
}
RUN_END = RunSucceeded | RunFailed | RunBudgetStopped | RunReleased
# The end of what queued runs belong to: a task, or an orchestration run (its agent steps' Runs
# name it as their task).
TASK_END = TaskCompleted | TaskFailed | TaskCancelled | OrchestrationRunCompleted | OrchestrationRunFailed

_STATEMENT = """
WITH doc AS (SELECT %s::jsonb AS d),
queued AS (
    INSERT INTO rm_run_queue
    SELECT q.run_id, q.workspace_id, q.task_id, q.subtask_id, q.agent_type, q.attempt, q.handover, q.external,
        q.dispatch_seq, q.queued_at, q.previous_run_id, coalesce(t.created_at, q.queued_at), q.reserved
    FROM jsonb_populate_recordset(NULL::rm_run_queue, (SELECT d->'queued' FROM doc)) q
    LEFT JOIN rm_tasks t ON t.task_id = q.task_id
    ON CONFLICT (run_id) DO NOTHING
),
unqueued AS (
    DELETE FROM rm_run_queue
    WHERE run_id IN (SELECT jsonb_array_elements_text(d->'unqueued')::uuid FROM doc)
    OR task_id IN (SELECT jsonb_array_elements_text(d->'ended_tasks')::uuid FROM doc)
),
claimed AS (
    INSERT INTO rm_leases SELECT * FROM jsonb_populate_recordset(NULL::rm_leases, (SELECT d->'claimed' FROM doc))
    ON CONFLICT (run_id) DO NOTHING
)
UPDATE rm_leases l SET status = e.status, ended_at = e.ended_at, error = e.error
FROM jsonb_populate_recordset(NULL::rm_leases, (SELECT d->'ended' FROM doc)) e
WHERE l.run_id = e.run_id AND l.status = 'claimed'
"""


def _ended(event: Event[Any]) -> dict[str, Any]:
    p = event.payload
    status = next(s for kind, s in ENDED.items() if isinstance(p, kind))
    return {
        "run_id": event.aggregate_id,
        "status": status,
        "ended_at": event.occurred_at,
        "error": getattr(p, "error", None),
    }


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """The batch's events in order: a purge drops what the events before it made, and not
    what the events after it make, however the log is cut into batches."""
    segment: list[Event[Any]] = []
    for e in events:
        if isinstance(e.payload, WorkspacePurged):
            _write(cur, segment)
            segment = []
            purge(cur, e.workspace_id, e.payload.stopped_tasks)
        else:
            segment.append(e)
    _write(cur, segment)


def _write(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    queued: dict[str, dict[str, Any] | None] = {}  # run id -> its queue row; None: claimed
    dispatched_here: set[str] = set()
    claimed: dict[str, dict[str, Any]] = {}  # run id -> its lease row, claimed in this batch
    ended: list[dict[str, Any]] = []  # ends of runs claimed in an earlier batch
    ended_tasks: list[str] = []
    for e in events:
        p = e.payload
        if isinstance(p, TaskSubtaskDispatched):
            run_id = p.run_id or str(run_id_for(e.aggregate_id, p.subtask_id, p.attempt, p.handover))
            dispatched_here.add(run_id)
            queued[run_id] = {
                "run_id": run_id,
                "workspace_id": e.workspace_id,
                "task_id": e.aggregate_id,
                "subtask_id": p.subtask_id,
                "agent_type": p.agent_type,
                "attempt": p.attempt,
                "handover": p.handover,
                "external": p.config.get("agentRuntime") == "external",
                # A container is started for it, whose session alone may claim it.
                "reserved": p.config.get("runner") == FLY,
                "dispatch_seq": e.seq,
                "queued_at": e.occurred_at,
                "previous_run_id": p.previous_run_id,
            }
        elif isinstance(p, RunStarted):
            queued[e.aggregate_id] = None
            if p.session_id is not None and p.lease_until is not None and p.claim_token_hash is not None:
                claimed[e.aggregate_id] = {
                    "run_id": e.aggregate_id,
                    "workspace_id": e.workspace_id,
                    "task_id": p.task_id,
                    "subtask_id": p.subtask_id,
                    "agent_type": p.agent_type,
                    "attempt": p.attempt,
                    "session_id": p.session_id,
                    "status": "claimed",
                    "claim_token_hash": p.claim_token_hash,
                    "claimed_at": e.occurred_at,
                    "lease_until": p.lease_until,
                    "previous_run_id": p.previous_run_id,
                    "dispatch_seq": p.dispatch_seq,
                }
        elif isinstance(p, RUN_END):
            end = _ended(e)
            if e.aggregate_id in claimed:
                claimed[e.aggregate_id].update(end)  # the UPDATE below cannot see this batch's inserts
            else:
                ended.append(end)
        elif isinstance(p, TASK_END):
            ended_tasks.append(e.aggregate_id)  # what it still had queued will never run
    ended_here = set(ended_tasks)  # the DELETE cannot see the rows this statement inserts
    document = {
        "queued": [row for row in queued.values() if row is not None and row["task_id"] not in ended_here],
        "unqueued": [run_id for run_id, row in queued.items() if row is None and run_id not in dispatched_here],
        "ended_tasks": ended_tasks,
        "claimed": list(claimed.values()),
        "ended": ended,
    }
    if any(document.values()):
        cur.execute(_STATEMENT, (as_json(document),))


def purge(cur: psycopg.Cursor[Any], workspace_id: str, stopped: list[str]) -> None:
    """A purge drops the queued runs of what it stopped (every task or orchestration run not
    ended when it was asked: an ended one has nothing queued) and the workspace's ended leases (a
    run still held keeps its lease until it ends: the sweeper must still see it). What was
    submitted while the purge was recorded goes on, as the read models show it: it stays queued."""
    cur.execute("DELETE FROM rm_run_queue WHERE workspace_id = %s AND task_id::text = ANY(%s)", (workspace_id, stopped))
    cur.execute("DELETE FROM rm_leases WHERE workspace_id = %s AND status <> 'claimed'", (workspace_id,))
