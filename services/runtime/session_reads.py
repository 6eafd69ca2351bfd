"""A key holder's views of the workspace's agent sessions: the list (from `rm_agent_sessions`)
and one session (from the event store, as it is now). Each shows the session whole, its
lineage included."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery, QueryParameter

from contracts.agent_runtime import Name
from contracts.agent_spawn import SessionDetail, SessionList
from libs.leases.clock import now_ms
from libs.readmodels import agent_sessions, session_activity
from libs.readmodels.session_activity import NONE
from libs.web.auth import workspace_of
from libs.web.openapi import ERRORS
from services.runtime.sessions import workspace_session
from services.runtime.state import runtime_state
from services.runtime.views import detail, row_of

MAX_LIMIT = 500
STATES = ("starting", "idle", "running", "stopped")
# A list waits this long at most for the read models to hold what was written before it.
REACH_TIMEOUT_S = 2.0


@get("/api/v1/workspaces/{workspace_id:str}/agent-sessions")
async def list_sessions(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    # `state` is Litestar's own keyword: the query parameter is named apart from the argument.
    in_state: Annotated[str | None, QueryParameter(name="state", pattern="^(" + "|".join(STATES) + ")$")] = None,
    parent_session_id: FromQuery[Name | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = 100,
) -> SessionList:
    """The workspace's sessions, newest first: all, or those in `state` (`running` while one
    holds a lease), or the children of `parent_session_id`."""
    found = runtime_state(request)
    workspace_of(request, workspace_id)
    async with found.pool.connection() as conn:
        await agent_sessions.reach_head(conn, REACH_TIMEOUT_S)  # a session just made or stopped shows as it is
    now = now_ms()
    rows = await agent_sessions.sessions(found.pool, workspace_id, in_state, parent_session_id, limit, now)
    leases = await session_activity.activity(found.pool, [row.session_id for row in rows], now)
    return SessionList(sessions=[detail(row, leases.get(row.session_id, NONE)) for row in rows])


@get(
    "/api/v1/workspaces/{workspace_id:str}/agent-sessions/{session_id:str}",
    opt={ERRORS: {404: "No such session in this workspace."}},
)
async def show_session(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], session_id: FromPath[str]
) -> SessionDetail:
    """One session of the workspace, as it is now."""
    workspace_of(request, workspace_id)
    state = runtime_state(request)
    session = await workspace_session(state.store, workspace_id, session_id)
    async with state.pool.connection() as conn:
        await agent_sessions.reach_head(conn, REACH_TIMEOUT_S)  # its leases as they are
    leases = await session_activity.activity(state.pool, [session_id], now_ms())
    return detail(row_of(session), leases.get(session_id, NONE))
