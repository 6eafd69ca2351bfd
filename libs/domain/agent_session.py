"""AgentSession: an agent process working a workspace's queue (spec 002), owned by the runtime
service. It authenticates with a bearer token shown once, at creation: the session keeps only
the token's hash."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from uuid import UUID

from contracts.payloads.agent_session import AgentSessionCreated, AgentSessionStopped
from libs.domain.base import WorkspaceAggregate
from libs.domain.errors import IllegalTransition

TOKEN_PREFIX = "ags"
STARTING, IDLE, RUNNING, STOPPED = "starting", "idle", "running", "stopped"


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[UUID, str] | None:
    """(session id, secret) of a well-formed session token (`ags_<session id hex>_<secret>`),
    else None."""
    prefix, _, rest = token.partition("_")
    session_hex, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not re.fullmatch(r"[0-9a-f]{32}", session_hex) or len(secret) < 32:
        return None
    return UUID(hex=session_hex), secret


class AgentSession(WorkspaceAggregate):
    class Created(WorkspaceAggregate.Created):
        payload: AgentSessionCreated

    def __init__(self, workspace_id: str, payload: AgentSessionCreated) -> None:
        self.workspace_id = workspace_id
        self.details = payload
        self.state = IDLE
        self.stopped: AgentSessionStopped | None = None

    @classmethod
    def create(
        cls, workspace_id: str, name: str, agent_name: str, model: str, provider: str, capabilities: list[str]
    ) -> tuple[AgentSession, str]:
        """A new root session, and its bearer token (whole, shown once: only its hash is kept)."""
        session_id, secret = uuid.uuid4(), secrets.token_urlsafe(32)
        created = AgentSessionCreated(
            name=name,
            agent_name=agent_name,
            model=model,
            provider=provider,
            capabilities=capabilities,
            token_hash=token_hash(secret),
            root_session_id=str(session_id),
        )
        session = cls._create(cls.Created, id=session_id, workspace_id=workspace_id, payload=created)
        return session, f"{TOKEN_PREFIX}_{session_id.hex}_{secret}"

    def holds(self, secret: str) -> bool:
        """Whether `secret` is this session's (compared in constant time)."""
        return secrets.compare_digest(self.details.token_hash, token_hash(secret))

    def stop(self, reason: str, detail: str | None = None) -> None:
        if self.state == STOPPED:
            raise IllegalTransition(f"session {self.id} is already stopped")
        self.emit(self.Stopped, AgentSessionStopped(reason=reason, detail=detail))

    class Stopped(WorkspaceAggregate.Event):
        payload: AgentSessionStopped

        def apply(self, session: AgentSession) -> None:
            session.state = STOPPED
            session.stopped = self.payload
