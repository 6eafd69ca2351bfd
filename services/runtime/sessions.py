"""Agent sessions: made by a workspace's API-key holder, then acting with their own token on
`/api/agent/*`. The runtime service is their single writer."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
from litestar import Request, delete, post
from litestar.params import FromPath, JSONBody

from contracts.agent_runtime import CreatedAgentSession, NewAgentSession, Permissions, SessionView
from contracts.payloads.agent_session import PermissionPolicy
from libs.domain.agent_session import AgentSession
from libs.domain.errors import IllegalTransition
from libs.eventstore.store import EventStore
from libs.readmodels import workspace_reads
from libs.web.auth import workspace_of
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from services.runtime import stopping
from services.runtime.coordinator import coordinator_from
from services.runtime.state import runtime_state
from services.runtime.stopping import STOPPED_BY_USER, StopConflict
from services.runtime.views import row_of, summary

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
    found = await workspace_reads.workspace(state.pool, workspace_id)
    if found is None:
        raise ApiError(404, "Not found", f"workspace {workspace_id} not found")
    # The limits the body leaves out are the workspace's (its coordinator settings).
    defaults = coordinator_from(workspace_id, found["config"]).default_budget()
    given = {k: v for k, v in msgspec.structs.asdict(data.spawn_budget).items() if v is not None}
    session, token = AgentSession.create(
        workspace_id,
        data.name,
        data.agent_name,
        data.model,
        data.provider,
        list(dict.fromkeys(data.capabilities)),
        permission_policy(data.permissions),
        msgspec.structs.replace(defaults, **given),
    )
    await asyncio.to_thread(state.store.save, [session])
    return CreatedAgentSession(session=session_view(session), token=token)


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
    session = await workspace_session(state.store, workspace_id, session_id)
    try:
        # With it, the descendants that asked to stop with their parent (`auto_stop_on_parent`).
        session = await stopping.stop(state.store, session, STOPPED_BY_USER, "stopped through the workspace API")
    except IllegalTransition as exc:
        raise ApiError(409, "session_stopped", str(exc)) from None
    except StopConflict:
        raise ApiError(409, "session_changed", f"session {session_id} changed meanwhile; try again") from None
    return session_view(session)


async def workspace_session(store: EventStore, workspace_id: str, session_id: str) -> AgentSession:
    """The workspace's session of that id; 404 for any other (another workspace's is as unknown)."""
    try:
        wanted = uuid.UUID(session_id)
    except ValueError:
        wanted = None
    found = await asyncio.to_thread(store.load, wanted) if wanted else None
    if not isinstance(found, AgentSession) or found.workspace_id != workspace_id or str(wanted) != session_id:
        raise ApiError(404, "Not found", f"session {session_id} not found")
    return found


def session_view(session: AgentSession) -> SessionView:
    return summary(row_of(session))


def permission_policy(given: Permissions) -> PermissionPolicy:
    """The policy as asked, each list without repeats."""
    return PermissionPolicy(**{k: list(dict.fromkeys(v)) for k, v in msgspec.structs.asdict(given).items()})
