"""Who calls: `/api/agent/*` acts as an agent session, authenticated by the session's bearer
token (`ags_...`, shown once when the session was made); every other route takes a workspace's
API key (`libs.web.auth`).

A session is read from the event store, not from a read model: a token works the moment its
session is made, and a stopped session is refused from its stop on."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from libs.domain.agent_session import STOPPED, AgentSession, split_token
from libs.web.auth import require_key, token_of
from libs.web.diagnostics import AGENT_PREFIX, AgentError
from libs.web.openapi import ERRORS
from services.runtime.state import runtime_state

SESSION = "agent_session"
# What every `/api/agent/*` route answers when the session cannot act (the OpenAPI document).
SESSION_ERRORS = {
    ERRORS: {
        401: "No session token, or one that is not valid: send `Authorization: Bearer <session token>`.",
        403: "The session is stopped.",
    }
}
CREATE_SESSION = "POST /api/v1/workspaces/{workspaceID}/agent-sessions"


async def require_caller(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if connection.scope["path"].startswith(AGENT_PREFIX) and not handler.opt.get("public"):
        await authenticate_session(connection)
    else:
        await require_key(connection, handler)


async def authenticate_session(connection: ASGIConnection[Any, Any, Any, Any]) -> AgentSession:
    token = token_of(connection)
    if token is None:
        raise AgentError(
            401,
            "session_token_missing",
            "this endpoint acts as an agent session: send Authorization: Bearer <session token>",
            suggested_command=f"{CREATE_SESSION} with a workspace API key, then use its token",
        )
    parts = split_token(token)
    found = None
    if parts is not None:
        store = runtime_state(connection).store
        found = await asyncio.to_thread(store.load, parts[0])
    if parts is None or not isinstance(found, AgentSession) or not found.holds(parts[1]):
        raise AgentError(401, "session_token_invalid", "the session token is not valid")
    refuse_if_stopped(found)
    connection.scope.setdefault("state", {})[SESSION] = found
    return found


def refuse_if_stopped(session: AgentSession) -> None:
    """A stopped session acts no more: 403, with why it stopped."""
    if session.state == STOPPED:
        reason = session.stopped.reason if session.stopped else "stopped"
        raise AgentError(
            403,
            "session_stopped",
            f"session {session.id} is stopped ({reason})",
            evidence={"session_id": str(session.id), "stop_reason": reason},
            suggested_command=f"{CREATE_SESSION} for a new session",
        )


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> AgentSession:
    return connection.scope["state"][SESSION]  # type: ignore[no-any-return]
