"""Where the log and its projection stand: the event store's head and the projector's position
(`rm_position`), which the read-your-writes waits and the feeds' snapshots compare."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg import AsyncConnection
from psycopg.sql import SQL, Identifier
from psycopg_pool import AsyncConnectionPool

from libs.eventstore.store import EVENTS_TABLE
from libs.readmodels.schema import PROJECTOR


async def log_head(pool: AsyncConnectionPool) -> int:
    """The event store's highest seq."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(Identifier(EVENTS_TABLE))
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def projector_position(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT position FROM rm_position WHERE name = %s", (PROJECTOR,))
    row = await cur.fetchone()
    return row[0] if row else 0


@asynccontextmanager
async def snapshot(pool: AsyncConnectionPool) -> AsyncIterator[tuple[AsyncConnection, int]]:
    """One repeatable-read snapshot of the read models, and the projector position they are
    complete up to: every event at or below it is in what the snapshot reads (the feeds' seam
    with their live part, the dump's consistency)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield conn, await projector_position(conn)
