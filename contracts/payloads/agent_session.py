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
    """How far a session may spawn helpers; a child inherits its parent's budget."""

    # All zero in a session made before budgets existed: it may not spawn.

    max_children: int = 0  # its children not stopped, at most
    max_depth: int = 0  # the deepest `spawn_depth` in its tree (the root is 0)
    max_active_per_workspace: int = 0  # no spawn once the workspace has this many sessions not stopped
    ttl_seconds: int = 0  # the longest a child may live, and what it gets when it asks for no TTL


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


class AgentSessionChildSpawned(Payload, frozen=True, kw_only=True):
    """On the parent, in the same transaction as the child's `agent_session.created`: spawns of
    one parent and its stop are ordered by the parent's version, and its children are known from
    its own events (the stop that takes them with it)."""

    child_session_id: str


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "agent_session.created": AgentSessionCreated,
    "agent_session.stopped": AgentSessionStopped,
    "agent_session.child_spawned": AgentSessionChildSpawned,
}
