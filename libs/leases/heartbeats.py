"""Heartbeats: they move a lease's end, and are not events.

A heartbeat is a fact nobody needs one by one (no user, auditor or consumer reads them), and an
agent sends one every few seconds for as long as it works: as events they would outnumber every
other kind. `lease_heartbeats` keeps the latest per run, beside the event store (it survives
every restart, and a rebuild of the read models leaves it alone). A lease's end is the later
of its claim's (`run.started`) and its last heartbeat's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from libs.eventstore.recorder import reconnecting
from libs.eventstore.store import EventStore

DDL = """
CREATE TABLE IF NOT EXISTS lease_heartbeats (
    run_id uuid PRIMARY KEY,
    claim_token_hash text NOT NULL,
    lease_until bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);
"""
TABLE_LOCK = 7_100_010  # serializes the DDL when services start together


def create(store: EventStore) -> None:
    with store.recorder.datastore.get_connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (TABLE_LOCK,))
        conn.execute(DDL)


@reconnecting
def extend(store: EventStore, run_id: UUID, token_hash: str, claim_until: int, lease_until: int, now: int) -> bool:
    """Moves the run's lease end to `lease_until`, unless the lease has passed already (its
    claim's end `claim_until`, and the last heartbeat's): false then, and nothing changes. Once
    passed, a lease never comes back, so the sweeper and a late heartbeat cannot both win. The
    caller has checked the run (still claimed, by this token); this is one statement."""
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lease_heartbeats AS h (run_id, claim_token_hash, lease_until, heartbeat_at) "
            "SELECT %(run)s, %(hash)s, %(until)s, %(now)s WHERE greatest(%(claim_until)s, "
            "coalesce((SELECT lease_until FROM lease_heartbeats WHERE run_id = %(run)s), 0)) > %(now)s "
            "ON CONFLICT (run_id) DO UPDATE "
            "SET lease_until = excluded.lease_until, heartbeat_at = excluded.heartbeat_at "
            "WHERE h.claim_token_hash = excluded.claim_token_hash "
            "RETURNING lease_until",
            {"run": run_id, "hash": token_hash, "until": lease_until, "now": now, "claim_until": claim_until},
        )
        return cur.fetchone() is not None


@reconnecting
def latest(store: EventStore, run_ids: Iterable[UUID]) -> dict[UUID, tuple[int, int]]:
    """Each run's last heartbeat: (the lease end it set, when it came), for runs that had one."""
    ids = list(run_ids)
    if not ids:
        return {}
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT run_id, lease_until, heartbeat_at FROM lease_heartbeats WHERE run_id = ANY(%s::uuid[])", (ids,)
        )
        rows: list[Any] = cur.fetchall()
    return {r["run_id"]: (r["lease_until"], r["heartbeat_at"]) for r in rows}
