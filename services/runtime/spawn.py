"""Spawn (spec 002): a session makes a child session within its spawn budget. The child's
permissions are within its parent's; `max_depth` and `ttl_seconds` bound each child;
`max_children` and `max_active_per_workspace` bound the sessions not stopped. Each refusal is a
diagnostic naming the permission or the limit, and records nothing.

Why two concurrent spawns cannot both pass a limit: every spawn of a workspace takes that
workspace's PostgreSQL advisory lock (a transaction lock, so it is released however the request
ends), waits until the read models hold every event committed so far, counts there, and saves
the child before it lets go. The next spawn therefore counts this one's child. Beside it, the
parent records the child (`agent_session.child_spawned`) in the same save as the child's creation:
a stop of the parent in between makes the save conflict, so no child outlives a parent that took
its auto-stopping children with it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn

from eventsourcing.persistence import IntegrityError
from litestar import Request, post
from litestar.params import JSONBody
from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

from contracts.agent_spawn import Spawn, Spawned, SpawnRequest
from contracts.payloads.agent_session import PermissionPolicy
from libs.domain.agent_session import AgentSession, wider_permissions
from libs.readmodels import agent_sessions
from libs.readmodels.schema import SPAWN_LOCK_CLASS
from libs.web.diagnostics import AgentError
from libs.web.openapi import ERRORS
from services.runtime.auth import CREATE_SESSION, SESSION_ERRORS, refuse_if_stopped, session_of
from services.runtime.sessions import permission_policy
from services.runtime.state import runtime_state
from services.runtime.views import detail, lineage, row_of

# How long a spawn waits for its workspace's turn, and then for the read models to catch up.
LOCK_TIMEOUT_S = 5
REACH_TIMEOUT_S = 5.0
SAVE_ATTEMPTS = 3
STOP_A_CHILD = (
    "DELETE /api/v1/workspaces/{workspace}/agent-sessions/{{session id}} (a key holder), or wait for one to end"
)

SPAWN_ERRORS = {
    ERRORS: {
        **SESSION_ERRORS[ERRORS],
        403: "The session is stopped; or the child would hold a permission the session lacks, be deeper than "
        "`max_depth`, or live longer than `ttl_seconds` (the diagnostic names which).",
        429: "The session has `max_children` children, or the workspace `max_active_per_workspace` sessions, "
        "not stopped.",
    }
}


@post("/api/agent/spawn", status_code=201, opt=SPAWN_ERRORS)
async def spawn(request: Request[Any, Any, Any], data: JSONBody[SpawnRequest]) -> Spawned:
    """A child of the calling session; its token is in this answer only."""
    state = runtime_state(request)
    caller = session_of(request)
    async with _workspace_turn(state.pool, caller.workspace_id) as conn:
        for _ in range(SAVE_ATTEMPTS):
            parent = await asyncio.to_thread(state.store.load, caller.id)
            assert isinstance(parent, AgentSession)
            permissions = _permissions(parent, data)
            ttl_expires_at = _ttl_expires_at(parent, data)
            if not await agent_sessions.reach_head(conn, REACH_TIMEOUT_S):
                raise AgentError(503, "service_unavailable", "the session counts are behind; try again shortly")
            _check_counts(parent, *await agent_sessions.spawn_counts(conn, parent.workspace_id, str(parent.id)))
            child, token = parent.spawn(
                data.agent_name or parent.details.agent_name,
                data.spawn_role,
                permissions,
                data.auto_stop_on_parent,
                ttl_expires_at,
            )
            try:
                await asyncio.to_thread(state.store.save, [parent, child])
            except IntegrityError:
                continue  # the parent changed (a key holder stopped it, say): read it again
            view = detail(row_of(child))
            return Spawned(
                spawn=Spawn(lineage=lineage(child.details), permissions=permissions, session=view), token=token
            )
    raise AgentError(503, "service_unavailable", f"session {caller.id} kept changing; try again")


# Spawns of this process holding a read-model connection at once: the others wait without one,
# so a burst of spawns queued on a workspace's lock cannot take the pool every request reads with.
_connections = asyncio.Semaphore(4)
BUSY = "too many spawns at once; try again shortly"


@contextlib.asynccontextmanager
async def _workspace_turn(pool: AsyncConnectionPool, workspace_id: str) -> AsyncIterator[AsyncConnection]:
    """Holds the workspace's spawn lock for the block, on the connection it yields: one spawn at a
    time in a workspace, across replicas."""
    try:
        async with asyncio.timeout(LOCK_TIMEOUT_S):
            await _connections.acquire()
    except TimeoutError:
        raise AgentError(503, "service_unavailable", BUSY) from None
    try:
        async with pool.connection() as conn, conn.transaction():
            try:
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'")
                await conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (SPAWN_LOCK_CLASS, workspace_id))
            except errors.LockNotAvailable:
                raise AgentError(503, "service_unavailable", BUSY) from None
            yield conn
    finally:
        _connections.release()


def _permissions(parent: AgentSession, data: SpawnRequest) -> PermissionPolicy:
    refuse_if_stopped(parent)
    allowed = parent.details.permissions
    if data.permissions is None:
        return allowed
    asked = permission_policy(data.permissions)
    wider = wider_permissions(allowed, asked)
    if wider:
        named = "; ".join(f"{kind}: {', '.join(items)}" for kind, items in wider.items())
        raise AgentError(
            403,
            "permission_not_allowed",
            f"the child would hold permissions its parent lacks ({named})",
            category="permission",
            evidence={"permissions": wider, "allowed": {kind: getattr(allowed, kind) for kind in wider}},
            suggested_command="POST /api/agent/spawn with permissions within session.lineage.permission_policy "
            "(GET /api/agent/me)",
        )
    return asked


def _ttl_expires_at(parent: AgentSession, data: SpawnRequest) -> int | None:
    """The child's end (ms since the epoch), once the limits that never change their answer let
    it through: no spawning at all, depth, TTL. A refusal here is a 403: retrying is pointless."""
    budget, depth = parent.details.spawn_budget, parent.details.spawn_depth + 1
    if budget.max_children == 0:
        _refuse(
            403,
            "max_children",
            0,
            0,
            f"session {parent.id} may not spawn: its max_children is 0",
            f"{CREATE_SESSION} with a spawn_budget, from a key holder",
        )
    if depth > budget.max_depth:
        _refuse(
            403,
            "max_depth",
            budget.max_depth,
            depth,
            f"a child of session {parent.id} would be at depth {depth}, below max_depth {budget.max_depth}",
            "spawn from a session nearer the root of its tree",
        )
    longest = budget.ttl_seconds
    if data.ttl_seconds is not None and longest and data.ttl_seconds > longest:
        _refuse(
            403,
            "ttl_seconds",
            longest,
            data.ttl_seconds,
            f"ttl_seconds {data.ttl_seconds} is longer than the spawn budget's {longest}",
            f"POST /api/agent/spawn with ttl_seconds of at most {longest}",
        )
    ttl = data.ttl_seconds or longest
    return int(time.time() * 1000) + ttl * 1000 if ttl else None


def _check_counts(parent: AgentSession, active: int, children: int) -> None:
    budget = parent.details.spawn_budget
    stop_one = STOP_A_CHILD.format(workspace=parent.workspace_id)
    if children >= budget.max_children:
        _refuse(
            429,
            "max_children",
            budget.max_children,
            children,
            f"session {parent.id} has {children} children not stopped, max_children is {budget.max_children}",
            stop_one,
        )
    if budget.max_active_per_workspace and active >= budget.max_active_per_workspace:
        _refuse(
            429,
            "max_active_per_workspace",
            budget.max_active_per_workspace,
            active,
            f"workspace {parent.workspace_id} has {active} sessions not stopped, "
            f"max_active_per_workspace is {budget.max_active_per_workspace}",
            stop_one,
        )


def _refuse(status: int, limit: str, allowed: int, actual: int, message: str, suggested: str) -> NoReturn:
    raise AgentError(
        status,
        f"{limit}_exceeded",
        message,
        category="limit",
        evidence={"limit": limit, "allowed": allowed, "actual": actual},
        suggested_command=suggested,
    )
