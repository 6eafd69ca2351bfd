"""AgentSession: an agent process working a workspace's queue (spec 002), owned by the runtime
service. It authenticates with a bearer token shown once, at creation: the session keeps only
the token's hash."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from pathlib import PurePosixPath
from uuid import UUID

import msgspec

from contracts.payloads.agent_session import (
    AgentSessionChildSpawned,
    AgentSessionCreated,
    AgentSessionStopped,
    PermissionPolicy,
    SpawnBudget,
)
from libs.domain.base import WorkspaceAggregate
from libs.domain.errors import IllegalTransition

TOKEN_PREFIX = "ags"
STARTING, IDLE, RUNNING, STOPPED = "starting", "idle", "running", "stopped"
USER, SPAWNED = "user", "spawned"  # made by a key holder; spawned by another session


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
        self.children: list[str] = []  # every child it spawned, stopped ones too
        self.last_activity = "created"  # what its latest event was (its views' `last_activity_kind`)

    @classmethod
    def create(
        cls,
        workspace_id: str,
        name: str,
        agent_name: str,
        model: str,
        provider: str,
        capabilities: list[str],
        permissions: PermissionPolicy | None = None,
        spawn_budget: SpawnBudget | None = None,
        ttl_expires_at: int | None = None,
    ) -> tuple[AgentSession, str]:
        """A new root session, and its bearer token (whole, shown once: only its hash is kept);
        with `ttl_expires_at`, the TTL sweeper stops it then."""
        session_id, secret = uuid.uuid4(), secrets.token_urlsafe(32)
        created = AgentSessionCreated(
            name=name,
            agent_name=agent_name,
            model=model,
            provider=provider,
            capabilities=capabilities,
            token_hash=token_hash(secret),
            root_session_id=str(session_id),
            permissions=permissions or PermissionPolicy(),
            spawn_budget=spawn_budget or SpawnBudget(),
            ttl_expires_at=ttl_expires_at,
        )
        session = cls._create(cls.Created, id=session_id, workspace_id=workspace_id, payload=created)
        return session, f"{TOKEN_PREFIX}_{session_id.hex}_{secret}"

    def spawn(
        self,
        agent_name: str,
        spawn_role: str | None,
        permissions: PermissionPolicy,
        auto_stop_on_parent: bool,
        ttl_expires_at: int | None,
    ) -> tuple[AgentSession, str]:
        """A child of this session, and its token. The child inherits the model, provider,
        capabilities and spawn budget; the caller has checked the budget and that `permissions`
        are within this session's (`wider_permissions`). Save both: this session records the
        child (`child_spawned`) in the same transaction as the child's creation."""
        if self.state == STOPPED:
            raise IllegalTransition(f"session {self.id} is stopped")
        session_id, secret = uuid.uuid4(), secrets.token_urlsafe(32)
        created = msgspec.structs.replace(
            self.details,
            name=spawn_role or agent_name,
            agent_name=agent_name,
            token_hash=token_hash(secret),
            type=SPAWNED,
            parent_session_id=str(self.id),
            spawn_depth=self.details.spawn_depth + 1,
            spawn_role=spawn_role,
            auto_stop_on_parent=auto_stop_on_parent,
            ttl_expires_at=ttl_expires_at,
            permissions=permissions,
        )
        child = type(self)._create(self.Created, id=session_id, workspace_id=self.workspace_id, payload=created)
        self.emit(self.ChildSpawned, AgentSessionChildSpawned(child_session_id=str(session_id)))
        return child, f"{TOKEN_PREFIX}_{session_id.hex}_{secret}"

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
            session.last_activity = "stopped"

    class ChildSpawned(WorkspaceAggregate.Event):
        payload: AgentSessionChildSpawned

        def apply(self, session: AgentSession) -> None:
            session.children.append(self.payload.child_session_id)
            session.last_activity = "child_spawned"


PERMISSION_KINDS = tuple(PermissionPolicy.__struct_fields__)


def wider_permissions(allowed: PermissionPolicy, requested: PermissionPolicy) -> dict[str, list[str]]:
    """What `requested` holds beyond `allowed`, by kind (empty: it is a subset). A workspace path
    is within an allowed one when it is that path or below it; any other permission is a name."""
    wider: dict[str, list[str]] = {}
    for kind in PERMISSION_KINDS:
        granted: list[str] = getattr(allowed, kind)
        asked: list[str] = getattr(requested, kind)
        within = _within_paths if kind == "workspace_paths" else _within_names
        extra = [item for item in asked if not within(item, granted)]
        if extra:
            wider[kind] = extra
    return wider


def _within_names(item: str, granted: list[str]) -> bool:
    return item in granted


def _within_paths(item: str, granted: list[str]) -> bool:
    parts = _parts(item)
    return any(parts[: len(base)] == base for base in map(_parts, granted))


def _parts(path: str) -> tuple[str, ...]:
    """A workspace path's segments: `./src//api/` is ("src", "api"); "." and "/" are the whole
    workspace (). The API refuses `..` segments, so none climbs out of an allowed path."""
    return tuple(p for p in PurePosixPath(path).parts if p not in ("/", "."))
