"""Agent sessions (`rm_agent_sessions`, spec 002): a row per session, written from its events,
read for the workspace's session list, the counts a spawn is checked against, and the sessions
whose TTL has ended.

A session's token is never here: the row keeps its `agent_session.created` payload less the
token's hash (as the feed shows it)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, NamedTuple
from uuid import UUID

import msgspec
import psycopg
from psycopg import AsyncConnection
from psycopg.sql import SQL, Identifier
from psycopg_pool import AsyncConnectionPool

from contracts.events import Event, public_payload
from contracts.payloads.agent_session import AgentSessionChildSpawned, AgentSessionCreated, AgentSessionStopped
from libs.eventstore.store import EVENTS_TABLE
from libs.readmodels.positions import projector_position
from libs.readmodels.session_activity import STATE_NOW

ACTIVE = "s.state <> 'stopped'"


class SessionRow(msgspec.Struct, frozen=True, kw_only=True):
    """A session as its views need it, from its row or from its aggregate alike."""

    session_id: str
    workspace_id: str
    state: str
    created_at: int  # ms since the epoch
    updated_at: int
    last_activity: str  # "created" | "child_spawned" | "stopped"
    stop_reason: str | None
    stop_detail: str | None
    details: AgentSessionCreated  # its token's hash blanked


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """Few events, written as they come, in order."""
    for e in events:
        match e.payload:
            case AgentSessionCreated() as p:
                details = public_payload(e.type, msgspec.to_builtins(p))
                cur.execute(
                    "INSERT INTO rm_agent_sessions VALUES (%s, %s, %s, %s, %s, %s, %s, 'created', NULL, NULL, %s) "
                    "ON CONFLICT DO NOTHING",
                    (
                        e.aggregate_id,
                        e.workspace_id,
                        p.parent_session_id,
                        "idle",
                        e.occurred_at,
                        e.occurred_at,
                        p.ttl_expires_at,
                        msgspec.json.encode(details).decode(),
                    ),
                )
            case AgentSessionStopped() as p:
                cur.execute(
                    "UPDATE rm_agent_sessions SET state = 'stopped', updated_at = %s, last_activity = 'stopped', "
                    "stop_reason = %s, stop_detail = %s WHERE session_id = %s",
                    (e.occurred_at, p.reason, p.detail, e.aggregate_id),
                )
            case AgentSessionChildSpawned():
                cur.execute(
                    "UPDATE rm_agent_sessions SET updated_at = %s, last_activity = 'child_spawned' "
                    "WHERE session_id = %s",
                    (e.occurred_at, e.aggregate_id),
                )


_COLUMNS = "session_id, workspace_id, state, created_at, updated_at, last_activity, stop_reason, stop_detail, details"


def _row(r: tuple[Any, ...]) -> SessionRow:
    return SessionRow(
        session_id=str(r[0]),
        workspace_id=r[1],
        state=r[2],
        created_at=r[3],
        updated_at=r[4],
        last_activity=r[5],
        stop_reason=r[6],
        stop_detail=r[7],
        details=msgspec.convert({**r[8], "token_hash": ""}, AgentSessionCreated),
    )


async def sessions(
    pool: AsyncConnectionPool,
    workspace_id: str,
    state: str | None,
    parent_session_id: str | None,
    limit: int,
    now: int,
) -> list[SessionRow]:
    """The workspace's sessions, newest first, narrowed by state (as the views show it at `now`,
    ms: `running` while one holds a lease) and parent when given."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT {_COLUMNS} FROM rm_agent_sessions s WHERE workspace_id = %(ws)s "
            f"AND (%(state)s::text IS NULL OR {STATE_NOW} = %(state)s) "
            "AND (%(parent)s::text IS NULL OR parent_session_id = %(parent)s) "
            "ORDER BY created_at DESC, session_id LIMIT %(limit)s",
            {"ws": workspace_id, "state": state, "parent": parent_session_id, "limit": limit, "now": now},
        )
        return [_row(r) for r in await cur.fetchall()]


class PeerRow(NamedTuple):
    session_id: str
    name: str
    capabilities: list[str]
    held_task_id: str | None  # the task of the lease it holds now, if any


async def peers(
    pool: AsyncConnectionPool, workspace_id: str, session_id: str, limit: int, now: int
) -> tuple[list[PeerRow], int]:
    """The workspace's sessions not stopped but `session_id`, newest first: at most `limit` of
    them, and how many there are."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT s.session_id::text, s.details->>'name', s.details->'capabilities', held.task_id, count(*) OVER () "
            "FROM rm_agent_sessions s LEFT JOIN LATERAL ("
            "SELECT l.task_id::text FROM rm_leases l LEFT JOIN lease_heartbeats h ON h.run_id = l.run_id "
            "WHERE l.session_id = s.session_id::text AND l.status = 'claimed' "
            "AND greatest(l.lease_until, coalesce(h.lease_until, 0)) > %(now)s ORDER BY l.claimed_at DESC LIMIT 1"
            f") held ON true WHERE s.workspace_id = %(ws)s AND {ACTIVE} AND s.session_id <> %(me)s::uuid "
            "ORDER BY s.created_at DESC, s.session_id LIMIT %(limit)s",
            {"ws": workspace_id, "me": session_id, "limit": limit, "now": now},
        )
        rows = await cur.fetchall()
    return [PeerRow(*r[:4]) for r in rows], rows[0][4] if rows else 0


async def spawn_counts(conn: AsyncConnection, workspace_id: str, parent_session_id: str) -> tuple[int, int]:
    """The workspace's sessions not stopped, and how many of them are the parent's children."""
    cur = await conn.execute(
        f"SELECT count(*), count(*) FILTER (WHERE parent_session_id = %s) FROM rm_agent_sessions s "
        f"WHERE workspace_id = %s AND {ACTIVE}",
        (parent_session_id, workspace_id),
    )
    row = await cur.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def expired(pool: AsyncConnectionPool, now_ms: int, limit: int = 100) -> list[UUID]:
    """Sessions not stopped whose TTL has ended, the longest ended first."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            f"SELECT session_id FROM rm_agent_sessions s WHERE {ACTIVE} AND ttl_expires_at <= %s "
            "ORDER BY ttl_expires_at LIMIT %s",
            (now_ms, limit),
        )
        return [r[0] for r in await cur.fetchall()]


async def reach_head(conn: AsyncConnection, timeout: float) -> bool:
    """Waits (at most `timeout` seconds) until the read models hold every event committed so far.
    On the caller's connection: a spawn holds its workspace's lock on it, and must not need a
    second one from a pool its waiting peers may have taken."""
    cur = await conn.execute(SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(Identifier(EVENTS_TABLE)))
    row = await cur.fetchone()
    head = int(row[0]) if row else 0
    deadline = time.monotonic() + timeout
    while await projector_position(conn) < head:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
