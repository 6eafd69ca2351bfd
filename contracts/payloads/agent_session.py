"""The payloads of an AgentSession's events (owner: the runtime service): `agent_session.<event>`
on the wire. A session is an agent process working a workspace's queue (spec 002)."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class PermissionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a session may use; a spawned child's is a subset of its parent's."""

    tools: list[str] = []
    skills: list[str] = []
    mcp_servers: list[str] = []
    network_channels: list[str] = []
    sandbox_profiles: list[str] = []
    workspace_paths: list[str] = []


class SpawnBudget(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How far a session may spawn helpers (0: not at all)."""

    max_children: int = 0
    max_depth: int = 0
    max_active_per_workspace: int = 0
    ttl_seconds: int = 0


class AgentSessionCreated(Payload, frozen=True, kw_only=True):
    name: str
    agent_name: str
    model: str
    provider: str
    capabilities: list[str]  # the agent types and tools it can run
    token_hash: str  # SHA-256 of the session's bearer token, which is shown once (never on the feed)
    type: str = "user"  # "user": made by a key holder; "spawned": by another session
    parent_session_id: str | None = None
    root_session_id: str
    spawn_depth: int = 0
    spawn_role: str | None = None
    auto_stop_on_parent: bool = False
    ttl_expires_at: int | None = None  # ms since the epoch
    permissions: PermissionPolicy = PermissionPolicy()
    spawn_budget: SpawnBudget = SpawnBudget()


class AgentSessionStopped(Payload, frozen=True, kw_only=True):
    reason: str  # "completed" | "stopped_by_user" | "parent_stopped" | "ttl_expired" | ...
    detail: str | None = None


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "agent_session.created": AgentSessionCreated,
    "agent_session.stopped": AgentSessionStopped,
}
