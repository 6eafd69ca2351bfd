"""Reads of the coordination channels (`libs.readmodels.channels`) for the runtime service: a
workspace's channels, a session's `recv` (which moves its cursor), and its inbox."""

from __future__ import annotations

from typing import Any, NamedTuple

from psycopg_pool import AsyncConnectionPool

# Tasks that can still have work to coordinate: their channels are listed before a message
# opens them.
FINISHED = ("completed", "failed", "cancelled")


class ChannelRow(NamedTuple):
    channel: str
    task_id: str
    run_id: str | None
    last_activity_at: int | None  # epoch ms; None for a task's channel no message opened yet


class MessageRow(NamedTuple):
    seq: int
    channel: str
    task_id: str
    run_id: str | None
    message_id: str
    from_session_id: str
    to_session_id: str | None
    kind: str
    correlation_id: str
    reply_to_message_id: str | None
    occurred_at: int  # epoch ms
    body: Any
    ext: dict[str, Any]


_COLUMNS = ", ".join(f"m.{c}" for c in MessageRow._fields)


async def channels(pool: AsyncConnectionPool, workspace_id: str, limit: int) -> list[ChannelRow]:
    """The workspace's channels, latest activity first: those a message opened, then the
    channels of its unfinished tasks that no message has opened yet, newest task first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "(SELECT channel, task_id, run_id, last_activity_at, 0 AS created_at FROM rm_channels "
            "WHERE workspace_id = %(ws)s) "
            "UNION ALL "
            "(SELECT 'task_' || t.task_id::text, t.task_id::text, NULL, NULL, t.created_at FROM rm_tasks t "
            "WHERE t.workspace_id = %(ws)s AND t.status <> ALL(%(finished)s) AND NOT EXISTS ("
            "SELECT 1 FROM rm_channels c WHERE c.workspace_id = %(ws)s AND c.channel = 'task_' || t.task_id::text)) "
            "ORDER BY last_activity_at DESC NULLS LAST, created_at DESC, channel LIMIT %(limit)s",
            {"ws": workspace_id, "finished": list(FINISHED), "limit": limit},
        )
        rows = await cur.fetchall()
    return [ChannelRow(*r[:4]) for r in rows]


async def channel(pool: AsyncConnectionPool, workspace_id: str, name: str) -> ChannelRow | None:
    """A channel a message opened (None: not opened, or not the workspace's)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT channel, task_id, run_id, last_activity_at FROM rm_channels "
            "WHERE workspace_id = %s AND channel = %s",
            (workspace_id, name),
        )
        row = await cur.fetchone()
    return ChannelRow(*row) if row else None


async def session_channels(
    pool: AsyncConnectionPool, session_id: str, workspace_id: str, held: list[str], limit: int
) -> list[ChannelRow]:
    """The workspace's channels a message opened that the session is in: those named in `held`
    (its leases' tasks'), those it posted on and those it received from, latest activity first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT c.channel, c.task_id, c.run_id, c.last_activity_at FROM rm_channels c "
            "WHERE c.workspace_id = %(ws)s AND (c.channel = ANY(%(held)s) "
            "OR c.channel_id IN (SELECT channel_id FROM agent_channel_cursors WHERE session_id = %(session)s) "
            "OR c.channel_id IN (SELECT channel_id FROM rm_channel_messages WHERE from_session_id = %(session)s)"
            ") ORDER BY c.last_activity_at DESC, c.channel LIMIT %(limit)s",
            {"ws": workspace_id, "held": held, "session": session_id, "limit": limit},
        )
        rows = await cur.fetchall()
    return [ChannelRow(*r) for r in rows]


async def receive(
    pool: AsyncConnectionPool, session_id: str, workspace_id: str, channel_id: str, limit: int
) -> list[MessageRow]:
    """The next messages of the channel for the session, oldest first: after its cursor, not
    its own; the cursor moves past them in the same transaction. The cursor's row is locked
    meanwhile, so two `recv`s of one session at once never both return a message."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO agent_channel_cursors VALUES (%s, %s, 0) ON CONFLICT DO NOTHING", (session_id, channel_id)
        )
        cur = await conn.execute(
            "SELECT position FROM agent_channel_cursors WHERE session_id = %s AND channel_id = %s FOR UPDATE",
            (session_id, channel_id),
        )
        found = await cur.fetchone()
        position = found[0] if found else 0
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM rm_channel_messages m WHERE m.channel_id = %s AND m.workspace_id = %s "
            "AND m.seq > %s AND m.from_session_id <> %s ORDER BY m.seq LIMIT %s",
            (channel_id, workspace_id, position, session_id, limit),
        )
        rows = [MessageRow(*r) for r in await cur.fetchall()]
        if rows:
            await conn.execute(
                "UPDATE agent_channel_cursors SET position = %s WHERE session_id = %s AND channel_id = %s",
                (rows[-1].seq, session_id, channel_id),
            )
    return rows


async def inbox(
    pool: AsyncConnectionPool, session_id: str, workspace_id: str, limit: int
) -> tuple[list[MessageRow], int]:
    """What the session has not received yet on the workspace's channels (what `recv` would
    return, others' messages after its cursor): the newest `limit` of them, and how many."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS}, count(*) OVER () FROM rm_channel_messages m "
            "LEFT JOIN agent_channel_cursors c ON c.session_id = %(session)s AND c.channel_id = m.channel_id "
            "WHERE m.workspace_id = %(ws)s AND m.from_session_id <> %(session)s AND m.seq > coalesce(c.position, 0) "
            "ORDER BY m.seq DESC LIMIT %(limit)s",
            {"session": session_id, "ws": workspace_id, "limit": limit},
        )
        rows = await cur.fetchall()
    return [MessageRow(*r[:-1]) for r in rows], rows[0][-1] if rows else 0
