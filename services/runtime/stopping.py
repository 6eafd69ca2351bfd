"""Stopping agent sessions: by a key holder (`DELETE .../agent-sessions/{id}`) and by the TTL
sweeper. Either way the descendants that asked to stop with their parent (`auto_stop_on_parent`)
stop in the same save, found through each session's own `child_spawned` events: the runtime
service is the single writer of sessions, so no child is left behind by a lagging read model."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError
from psycopg_pool import AsyncConnectionPool

from libs.domain.agent_session import STOPPED, AgentSession
from libs.domain.errors import IllegalTransition
from libs.eventstore.store import EventStore
from libs.readmodels import agent_sessions
from libs.readmodels.schema import SESSION_TTL_LOCK
from services.runtime.state import RuntimeState

log = logging.getLogger(__name__)

STOPPED_BY_USER, PARENT_STOPPED, TTL_EXPIRED = "stopped_by_user", "parent_stopped", "ttl_expired"
STOP_ATTEMPTS = 5
SWEEP_INTERVAL_S = 1.0


class StopConflict(Exception):
    """The session's tree kept changing while it was being stopped."""


def _stop_tree(store: EventStore, session: AgentSession, reason: str, detail: str | None) -> list[AgentSession]:
    """Stops `session`, then, level by level, each child not stopped that asked to stop with its
    parent; every aggregate changed, the session first."""
    session.stop(reason, detail)
    changed, level = [session], [session]
    while level:
        children = store.load_many(UUID(child) for parent in level for child in parent.children)
        level = [
            child
            for child in children.values()
            if isinstance(child, AgentSession) and child.state != STOPPED and child.details.auto_stop_on_parent
        ]
        for child in level:
            child.stop(PARENT_STOPPED, f"its parent session {child.details.parent_session_id} stopped ({reason})")
        changed += level
    return changed


async def stop(store: EventStore, session: AgentSession, reason: str, detail: str | None) -> AgentSession:
    """Stops the session and its auto-stopping descendants in one save. A spawn under any of them
    meanwhile makes the save conflict (it wrote the parent's next version): the tree is then read
    again, with the new child in it. Raises IllegalTransition when the session is stopped already."""
    for _ in range(STOP_ATTEMPTS):
        changed = await asyncio.to_thread(_stop_tree, store, session, reason, detail)
        try:
            await asyncio.to_thread(store.save, changed)
        except IntegrityError:
            found = await asyncio.to_thread(store.load, session.id)
            assert isinstance(found, AgentSession)
            session = found
            continue
        return session
    raise StopConflict(f"session {session.id} kept changing while it was being stopped")


async def sweep_ttl(store: EventStore, pool: AsyncConnectionPool, now_ms: int | None = None) -> int:
    """Stops the sessions whose TTL has ended (with their auto-stopping descendants); how many."""
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    stopped = 0
    for session_id in await agent_sessions.expired(pool, now_ms):
        session = await asyncio.to_thread(store.load, session_id)
        # The row may lag its session: a cascade of this sweep, or a key holder, stopped it.
        if not isinstance(session, AgentSession) or session.state == STOPPED:
            continue
        ends = session.details.ttl_expires_at
        if ends is None or ends > now_ms:
            continue
        ended = datetime.fromtimestamp(ends / 1000, UTC).isoformat()
        try:
            await stop(store, session, TTL_EXPIRED, f"its TTL ended at {ended}")
        except (IllegalTransition, StopConflict):
            continue  # stopped meanwhile, or tried again at the next sweep
        stopped += 1
    return stopped


async def sweep_ttl_forever(state: RuntimeState) -> None:
    """Every second, on the one replica that holds the sweeper's advisory lock."""
    conn: psycopg.AsyncConnection | None = None
    held = False
    try:
        while True:
            try:
                if conn is None:
                    conn = await psycopg.AsyncConnection.connect(state.settings.database_url, autocommit=True)
                held = await _lead(conn, held)
                if held:
                    await sweep_ttl(state.store, state.pool)
            except Exception:  # a sweep that fails is tried again at the next one
                log.warning("session TTL sweep failed; trying again", exc_info=True)
                # The lock's session may be gone, and the lock with it: start over on a new one.
                if conn is not None:
                    await conn.close()
                conn, held = None, False
            await asyncio.sleep(SWEEP_INTERVAL_S)
    finally:
        if conn is not None:
            await conn.close()


async def _lead(conn: psycopg.AsyncConnection, held: bool) -> bool:
    """Whether this replica holds the lock: taken if free; a query on the session that holds it
    fails when that session, and so the lock, is gone."""
    if held:
        await conn.execute("SELECT 1")
        return True
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (SESSION_TTL_LOCK,))
    row = await cur.fetchone()
    if row and row[0]:
        log.info("session TTL sweeper: this replica is the active one")
        return True
    return False
