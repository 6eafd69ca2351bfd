"""What agent sessions do with leases, read for their views: whether each holds one now (its
`state`: `running`), when it last claimed, heartbeat and ended one, and which run it holds.

From `rm_leases` (a claim is `run.started` naming the session; its end another run event) and
`lease_heartbeats` (no events). A session's `running` or `idle` is worked out here when a view is
read, never recorded: a `state_changed` event per claim and per end would double the appends of
every run (the executor's own runs are claims too), from a writer that does not own sessions (the
executor owns runs, the runtime sessions), and it would still be wrong the moment a lease lapses
with no event yet (the sweeper acts up to a second later; a lease past its end is held by no one).
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg_pool import AsyncConnectionPool

from libs.domain.agent_session import IDLE, RUNNING, STOPPED

# A lease the session `s` (a row of `rm_agent_sessions`) holds now: claimed, its end (the claim's
# or its last heartbeat's) not passed at %(now)s.
HOLDS_A_LEASE = (
    "EXISTS (SELECT 1 FROM rm_leases l LEFT JOIN lease_heartbeats h ON h.run_id = l.run_id "
    "WHERE l.session_id = s.session_id::text AND l.status = 'claimed' "
    "AND greatest(l.lease_until, coalesce(h.lease_until, 0)) > %(now)s)"
)
# The state a view shows, from the row's (`idle` or `stopped`) and the leases.
STATE_NOW = f"CASE WHEN s.state = '{STOPPED}' THEN '{STOPPED}' WHEN {HOLDS_A_LEASE} THEN '{RUNNING}' ELSE '{IDLE}' END"
# A session holds at most a lease or two at a time and claims the next only after: its latest
# claims hold the latest of everything (a heartbeat or an end is of a run it claimed lately).
RECENT_CLAIMS = 16


class LeaseActivity(msgspec.Struct, frozen=True, kw_only=True):
    """A session's leases as its views show them; all None for one that never claimed."""

    held_run_id: str | None = None  # the lease it holds now (its newest, if several)
    held_task_id: str | None = None
    held_since: int | None = None  # ms since the epoch, as the log's times
    last_claimed_at: int | None = None
    last_heartbeat_at: int | None = None
    last_ended_at: int | None = None
    last_ended_status: str | None = None  # "completed" | "failed" | "released" | "expired" | ...

    @property
    def running(self) -> bool:
        return self.held_run_id is not None


NONE = LeaseActivity()


def state_now(stored: str, activity: LeaseActivity) -> str:
    """`stopped` once stopped, `running` while it holds a lease, `idle` otherwise."""
    if stored == STOPPED:
        return STOPPED
    return RUNNING if activity.running else IDLE


_ACTIVITY = f"""
SELECT s.id, a.* FROM unnest(%(ids)s::text[]) AS s(id) CROSS JOIN LATERAL (
    SELECT
        (array_agg(r.run_id ORDER BY r.claimed_at DESC) FILTER (WHERE r.live))[1],
        (array_agg(r.task_id ORDER BY r.claimed_at DESC) FILTER (WHERE r.live))[1],
        max(r.claimed_at) FILTER (WHERE r.live),
        max(r.claimed_at),
        max(r.heartbeat_at),
        max(r.ended_at),
        (array_agg(r.status ORDER BY r.ended_at DESC) FILTER (WHERE r.ended_at IS NOT NULL))[1]
    FROM (
        SELECT l.run_id::text, l.task_id::text, l.status, l.claimed_at, l.ended_at, h.heartbeat_at,
            l.status = 'claimed' AND greatest(l.lease_until, coalesce(h.lease_until, 0)) > %(now)s AS live
        FROM rm_leases l LEFT JOIN lease_heartbeats h ON h.run_id = l.run_id
        WHERE l.session_id = s.id ORDER BY l.claimed_at DESC LIMIT {RECENT_CLAIMS}
    ) r
) a
"""


async def activity(pool: AsyncConnectionPool, session_ids: list[str], now: int) -> dict[str, LeaseActivity]:
    """Each session's leases at `now` (ms), by session id."""
    if not session_ids:
        return {}
    async with pool.connection() as conn:
        cur = await conn.execute(_ACTIVITY, {"ids": session_ids, "now": now})
        rows: list[Any] = await cur.fetchall()
    return {
        r[0]: LeaseActivity(
            held_run_id=r[1],
            held_task_id=r[2],
            held_since=r[3],
            last_claimed_at=r[4],
            last_heartbeat_at=r[5],
            last_ended_at=r[6],
            last_ended_status=r[7],
        )
        for r in rows
    }
