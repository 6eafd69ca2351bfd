"""`rm_worker_machines`: the container workers (Fly Machines) started and not yet destroyed, the
executor's reaper's candidates. Each row from its `worker_machine.started` to its `.destroyed`,
so the reaper reads a handful of rows a second, whatever else the system does."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from contracts.events import Event
from contracts.payloads.worker_machine import WorkerMachineDestroyed, WorkerMachineStarted
from libs.readmodels.codec import as_json

TABLE = "rm_worker_machines"

DDL = """
CREATE TABLE IF NOT EXISTS rm_worker_machines (
    run_id uuid PRIMARY KEY,
    machine_aggregate_id uuid NOT NULL,
    workspace_id text NOT NULL,
    claim_by bigint NOT NULL,
    started_at bigint NOT NULL
);
"""

_STATEMENT = """
WITH doc AS (SELECT %s::jsonb AS d),
started AS (
    INSERT INTO rm_worker_machines
    SELECT * FROM jsonb_populate_recordset(NULL::rm_worker_machines, (SELECT d->'started' FROM doc))
    ON CONFLICT (run_id) DO NOTHING
)
DELETE FROM rm_worker_machines
WHERE machine_aggregate_id IN (SELECT jsonb_array_elements_text(d->'destroyed')::uuid FROM doc)
"""


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    started: dict[str, dict[str, Any]] = {}  # by the machine's aggregate id
    destroyed: list[str] = []
    for e in events:
        p = e.payload
        if isinstance(p, WorkerMachineStarted):
            started[e.aggregate_id] = {
                "run_id": p.run_id,
                "machine_aggregate_id": e.aggregate_id,
                "workspace_id": e.workspace_id,
                "claim_by": p.claim_by,
                "started_at": e.occurred_at,
            }
        elif isinstance(p, WorkerMachineDestroyed):
            # Started and destroyed in one batch: never inserted (the DELETE cannot see the insert).
            if started.pop(e.aggregate_id, None) is None:
                destroyed.append(e.aggregate_id)
    if started or destroyed:
        cur.execute(_STATEMENT, (as_json({"started": list(started.values()), "destroyed": destroyed}),))


def live(conn: psycopg.Connection[Any], limit: int) -> list[dict[str, Any]]:
    """The machines not destroyed, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(
            "SELECT run_id::text, machine_aggregate_id::text, workspace_id, claim_by FROM rm_worker_machines "
            "ORDER BY started_at LIMIT %s",
            (limit,),
        )
        return list(cur.fetchall())
