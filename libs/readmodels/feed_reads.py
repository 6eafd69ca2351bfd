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
