"""Reads of spec 002's queue and leases (`rm_run_queue`, `rm_leases`), with the heartbeats that
moved each lease's end (`lease_heartbeats`). Synchronous, on the event store's connections: the
runtime service claims and sweeps in threads, as the workers do."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.eventstore.recorder import reconnecting
from libs.eventstore.store import EventStore

TERMINAL = ("completed", "failed", "cancelled")
LEASE_COLUMNS = (
    "l.run_id, l.workspace_id, l.task_id, l.subtask_id, l.agent_type, l.attempt, l.session_id, l.status, "
    "l.claim_token_hash, l.claimed_at, greatest(l.lease_until, coalesce(h.lease_until, 0)) AS lease_until, "
    "h.heartbeat_at, l.ended_at, l.error, l.previous_run_id, l.dispatch_seq"
)


@reconnecting
def _rows(store: EventStore, sql: str, params: tuple[Any, ...] | dict[str, Any]) -> list[dict[str, Any]]:
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def candidates(
    store: EventStore, workspace_id: str, agent_types: list[str] | None, limit: int, run_id: str | None = None
) -> list[dict[str, Any]]:
    """The workspace's queued runs a session may claim, oldest task first, then oldest dispatch
    (a run given back keeps its task's place): of tasks still going (a run of an ended task will
    never be wanted), of `agent_types` when given. With `run_id`, that run only (a reserved one
    too: the caller checks the session it is kept for); without, no reserved run."""
    return _rows(
        store,
        "SELECT q.run_id, q.task_id, q.subtask_id, q.agent_type, q.attempt, q.handover, q.dispatch_seq, q.queued_at, "
        "q.previous_run_id, q.reserved FROM rm_run_queue q JOIN rm_tasks t ON t.task_id = q.task_id "
        "WHERE q.workspace_id = %(ws)s AND t.status NOT IN ('completed', 'failed', 'cancelled') "
        "AND (%(types)s::text[] IS NULL OR q.agent_type = ANY(%(types)s::text[])) "
        "AND CASE WHEN %(run)s::uuid IS NULL THEN NOT q.reserved ELSE q.run_id = %(run)s::uuid END "
        "ORDER BY q.task_created_at, q.dispatch_seq LIMIT %(limit)s",
        {"ws": workspace_id, "types": agent_types, "limit": limit, "run": run_id},
    )


def lapsed(store: EventStore, now: int, limit: int) -> list[dict[str, Any]]:
    """Claimed runs whose lease ended before `now` (its claim's end and its last heartbeat's)."""
    return _rows(
        store,
        "SELECT l.run_id, greatest(l.lease_until, coalesce(h.lease_until, 0)) AS lease_until "
        "FROM rm_leases l LEFT JOIN lease_heartbeats h ON h.run_id = l.run_id "
        "WHERE l.status = 'claimed' AND l.lease_until < %(now)s AND coalesce(h.lease_until, 0) < %(now)s "
        "ORDER BY l.lease_until LIMIT %(limit)s",
        {"now": now, "limit": limit},
    )


def held_by(store: EventStore, session_id: str, now: int) -> list[dict[str, Any]]:
    """The leases the session holds now (claimed, not passed)."""
    return _rows(
        store,
        f"SELECT {LEASE_COLUMNS} FROM rm_leases l LEFT JOIN lease_heartbeats h ON h.run_id = l.run_id "
        "WHERE l.session_id = %(session)s AND l.status = 'claimed' "
        "AND greatest(l.lease_until, coalesce(h.lease_until, 0)) > %(now)s ORDER BY l.claimed_at",
        {"session": session_id, "now": now},
    )


def task_row(store: EventStore, task_id: str) -> dict[str, Any] | None:
    """What a claim shows of its task: its status and its description."""
    rows = _rows(
        store,
        "SELECT task_id, workspace_id, status, updated_at, "
        "coalesce(request->>'description', state->'request'->>'description') AS description "
        "FROM rm_tasks WHERE task_id = %s::uuid",
        (task_id,),
    )
    return rows[0] if rows else None


def with_its_task(store: EventStore, run_id: UUID, task_id: str) -> tuple[tuple[int, int] | None, str | None]:
    """A held run's last heartbeat (as `latest` gives it), and the status of what it works for:
    its task, or its orchestration run (an agent step's Run names that as its task); None when
    neither is in the read models (purged with its workspace). One round trip: every call under
    a lease needs both."""
    rows = _rows(
        store,
        "SELECT h.lease_until, h.heartbeat_at, coalesce(t.status, o.status) AS status "
        "FROM (SELECT %(run)s::uuid AS run_id, %(task)s::uuid AS task_id) x "
        "LEFT JOIN lease_heartbeats h ON h.run_id = x.run_id "
        "LEFT JOIN rm_tasks t ON t.task_id = x.task_id "
        "LEFT JOIN rm_orchestration_runs o ON o.id = x.task_id",
        {"run": run_id, "task": task_id},
    )
    row = rows[0]
    beat = None if row["lease_until"] is None else (row["lease_until"], row["heartbeat_at"])
    return beat, row["status"]
