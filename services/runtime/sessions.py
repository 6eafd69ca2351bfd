"""Agent sessions: made by a workspace's API-key holder, then acting with their own token on
`/api/agent/*`. The runtime service is their single writer."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import IntegrityError
from litestar import Request, delete, get, post
from litestar.params import FromPath, JSONBody

from contracts.agent_runtime import (
    Capability,
    CreatedAgentSession,
    Limits,
    Lineage,
    Me,
    MeView,
    NewAgentSession,
    SelfView,
    SessionView,
    WorkspaceRef,
)
from libs.domain.agent_session import AgentSession
from libs.domain.errors import IllegalTransition
from libs.eventstore.store import EventStore
from libs.readmodels import workspace_reads
from libs.web.auth import workspace_of
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from services.runtime.auth import session_of
from services.runtime.state import runtime_state

# Sections of `context` list at most this many items (`limits.context_section_limit`).
CONTEXT_SECTION_LIMIT = 50
# A session works one run at a time: an agent process that wants more in parallel spawns helpers.
MAX_ACTIVE_LEASES = 1


@post("/api/v1/workspaces/{workspace_id:str}/agent-sessions", status_code=201)
async def create_session(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], data: JSONBody[NewAgentSession]
) -> CreatedAgentSession:
    """A new agent session in the caller's workspace; its token is in this answer only."""
    state = runtime_state(request)
    workspace_of(request, workspace_id)
    if await workspace_reads.workspace(state.pool, workspace_id) is None:
        raise ApiError(404, "Not found", f"workspace {workspace_id} not found")
    session, token = AgentSession.create(
        workspace_id, data.name, data.agent_name, data.model, data.provider, list(dict.fromkeys(data.capabilities))
    )
    await asyncio.to_thread(state.store.save, [session])
    return CreatedAgentSession(session=session_view(session), token=token)


# What every `/api/agent/*` route answers when the session cannot act (the OpenAPI document).
SESSION_ERRORS = {
    ERRORS: {
        401: "No session token, or one that is not valid: send `Authorization: Bearer <session token>`.",
        403: "The session is stopped.",
    }
}


@delete(
    "/api/v1/workspaces/{workspace_id:str}/agent-sessions/{session_id:str}",
    status_code=200,
    opt={ERRORS: {404: "No such session in this workspace.", 409: "The session is already stopped."}},
)
async def stop_session(
    request: Request[Any, Any, Any], workspace_id: FromPath[str], session_id: FromPath[str]
) -> SessionView:
    """Stops a session of the caller's workspace: its token is refused from now on."""
    state = runtime_state(request)
    workspace_of(request, workspace_id)
    session = await _session(state.store, workspace_id, session_id)
    try:
        session.stop("stopped_by_user", "stopped through the workspace API")
    except IllegalTransition as exc:
        raise ApiError(409, "session_stopped", str(exc)) from None
    try:
        await asyncio.to_thread(state.store.save, [session])
    except IntegrityError:
        raise ApiError(409, "session_changed", f"session {session_id} changed meanwhile; try again") from None
    return session_view(session)


async def _session(store: EventStore, workspace_id: str, session_id: str) -> AgentSession:
    """The workspace's session of that id; 404 for any other (another workspace's is as unknown)."""
    try:
        wanted = uuid.UUID(session_id)
    except ValueError:
        wanted = None
    found = await asyncio.to_thread(store.load, wanted) if wanted else None
    if not isinstance(found, AgentSession) or found.workspace_id != workspace_id or str(wanted) != session_id:
        raise ApiError(404, "Not found", f"session {session_id} not found")
    return found


@get("/api/agent/me", opt=SESSION_ERRORS)
async def me(request: Request[Any, Any, Any]) -> Me:
    """The calling session: itself, its lineage and limits, the leases it holds, its channels."""
    state = runtime_state(request)
    session = session_of(request)
    found = await workspace_reads.workspace(state.pool, session.workspace_id)
    details = session.details
    return Me(
        me=MeView(
            active_task_leases=[],  # claims come with leases (docs/agent-runtime.md §2)
            capabilities=[Capability(id=c, source="session", summary=c) for c in details.capabilities],
            channels=[],
            limits=Limits(
                context_section_limit=CONTEXT_SECTION_LIMIT,
                max_active_task_leases=MAX_ACTIVE_LEASES,
                max_children=details.spawn_budget.max_children,
                max_spawn_depth=details.spawn_budget.max_depth,
            ),
            self=SelfView(
                agent_name=details.agent_name,
                model=details.model,
                provider=details.provider,
                session_id=str(session.id),
            ),
            session=session_view(session),
            workspace=WorkspaceRef(
                id=session.workspace_id, name=found["name"] if found else session.workspace_id, root_dir=""
            ),
        )
    )


def session_view(session: AgentSession) -> SessionView:
    details = session.details
    return SessionView(
        id=str(session.id),
        name=details.name,
        state=session.state,
        type=details.type,
        channel=None,
        created_at=session.created_on,
        updated_at=session.modified_on,
        lineage=Lineage(
            auto_stop_on_parent=details.auto_stop_on_parent,
            parent_session_id=details.parent_session_id,
            permission_policy=details.permissions,
            root_session_id=details.root_session_id,
            spawn_budget=details.spawn_budget,
            spawn_depth=details.spawn_depth,
            spawn_role=details.spawn_role,
            ttl_expires_at=(
                datetime.fromtimestamp(details.ttl_expires_at / 1000, UTC) if details.ttl_expires_at else None
            ),
        ),
        stop_reason=session.stopped.reason if session.stopped else None,
        stop_detail=session.stopped.detail if session.stopped else None,
    )
