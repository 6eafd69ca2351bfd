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


# The database's clock, read when the statement runs: the one clock a heartbeat and the sweeper
# both answer to, so one of them wins a lease's last moment, never both (a caller's clock, read
# before a wait for a thread or a connection, could be seconds old).
NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
EXPIRED = -1  # the lease end the sweeper marks a lease it ended with: nothing extends it again


@reconnecting
def extend(store: EventStore, run_id: UUID, token_hash: str, claim_until: int, ttl_ms: int) -> tuple[int, int] | None:
    """Moves the run's lease end to now + `ttl_ms`, unless the lease has passed (its claim's end
    `claim_until`, and the last heartbeat's) or the sweeper ended it: None then, and nothing
    changes; else the new end and the heartbeat's time. One statement: the row's lock orders it with the sweeper's mark.
    The caller has checked the run (still claimed, by this token)."""
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lease_heartbeats AS h (run_id, claim_token_hash, lease_until, heartbeat_at) "
            f"SELECT %(run)s, %(hash)s, {NOW} + %(ttl)s, {NOW} WHERE greatest(%(claim_until)s, "
            f"coalesce((SELECT lease_until FROM lease_heartbeats WHERE run_id = %(run)s), 0)) > {NOW} "
            "ON CONFLICT (run_id) DO UPDATE "
            "SET lease_until = excluded.lease_until, heartbeat_at = excluded.heartbeat_at "
            "WHERE h.claim_token_hash = excluded.claim_token_hash AND h.lease_until <> %(expired)s "
            "AND greatest(h.lease_until, %(claim_until)s) > excluded.heartbeat_at "
            "RETURNING lease_until, heartbeat_at",
            {"run": run_id, "hash": token_hash, "ttl": ttl_ms, "claim_until": claim_until, "expired": EXPIRED},
        )
        row = cur.fetchone()
        return (int(row["lease_until"]), int(row["heartbeat_at"])) if row else None


@reconnecting
def mark_expired(store: EventStore, run_id: UUID, token_hash: str, claim_until: int) -> bool:
    """The sweeper's claim on ending a lease: true when the lease (the claim's end, and the last
    heartbeat's) has passed by the database's clock, and is marked so no heartbeat extends it
    again; false when a heartbeat kept it alive."""
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO lease_heartbeats AS h (run_id, claim_token_hash, lease_until, heartbeat_at) "
            f"SELECT %(run)s, %(hash)s, %(expired)s, {NOW} WHERE %(claim_until)s < {NOW} "
            "ON CONFLICT (run_id) DO UPDATE SET lease_until = %(expired)s "
            f"WHERE h.lease_until < {NOW} AND %(claim_until)s < {NOW} "
            "RETURNING run_id",
            {"run": run_id, "hash": token_hash, "claim_until": claim_until, "expired": EXPIRED},
        )
        return cur.fetchone() is not None


@reconnecting
def prune(store: EventStore) -> int:
    """Drops the heartbeats of runs that ended (the read models know they did): a run's row
    matters only while it is claimed."""
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(
            "DELETE FROM lease_heartbeats h USING rm_leases l WHERE l.run_id = h.run_id AND l.status <> 'claimed'"
        )
        return cur.rowcount


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
