"""Reads of the events feed's rows (`rm_feed`), for the SSE feed's catch-up."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from libs.readmodels.positions import snapshot


async def feed(
    pool: AsyncConnectionPool, workspace_id: str, after: int, limit: int = 1000
) -> tuple[list[tuple[int, str, str, dict[str, Any]]], int]:
    """Feed rows after `after`, and the projector position they are complete up to."""
    async with snapshot(pool) as (conn, position):
        cur = await conn.execute(
            "SELECT seq, type, aggregate_id, payload FROM rm_feed WHERE workspace_id = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (workspace_id, after, limit),
        )
        rows = await cur.fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows], position


async def purged_stopped(pool: AsyncConnectionPool) -> dict[str, set[str]]:
    """The tasks each workspace's purges stopped (workspace -> task ids): what their runs record
    as they stop comes after the purge, and the live feed leaves it out as the read models do."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT workspace_id, task_id::text FROM rm_purged_tasks WHERE stopped")
        rows = await cur.fetchall()
    stopped: dict[str, set[str]] = {}
    for workspace_id, task_id in rows:
        stopped.setdefault(workspace_id, set()).add(task_id)
    return stopped
