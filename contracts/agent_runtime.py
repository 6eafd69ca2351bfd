"""Spec 002's wire format (the agent runtime, `/api/agent/*`): sessions, the views an agent
reads, and the diagnostic error envelope. Keys are snake_case, as the spec writes them; times
are RFC 3339."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from contracts.payloads.agent_session import PermissionPolicy, SpawnBudget

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class NewAgentSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/v1/workspaces/{workspaceID}/agent-sessions`: a session for an agent process."""

    name: Name
    agent_name: Name = "agent"
    model: Annotated[str, msgspec.Meta(max_length=200)] = ""
    provider: Annotated[str, msgspec.Meta(max_length=100)] = ""
    # The agent types and tools it can run (claims are filtered by them).
    capabilities: Annotated[list[Name], msgspec.Meta(max_length=100)] = []


class Lineage(msgspec.Struct, frozen=True, kw_only=True):
    auto_stop_on_parent: bool
    parent_session_id: str | None
    permission_policy: PermissionPolicy
    root_session_id: str
    spawn_budget: SpawnBudget
    spawn_depth: int
    spawn_role: str | None
    ttl_expires_at: datetime | None


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    state: str  # "starting" | "idle" | "running" | "stopped"
    type: str
    channel: str | None
    created_at: datetime
    updated_at: datetime
    lineage: Lineage
    stop_reason: str | None = None
    stop_detail: str | None = None


class CreatedAgentSession(msgspec.Struct, frozen=True, kw_only=True):
    """The session and its bearer token: shown this once, kept only as a hash."""

    session: SessionView
    token: str


class Capability(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    source: str
    summary: str


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    context_section_limit: int
    max_active_task_leases: int
    max_children: int
    max_spawn_depth: int


class SelfView(msgspec.Struct, frozen=True, kw_only=True):
    agent_name: str
    model: str
    provider: str
    session_id: str


class WorkspaceRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    root_dir: str


class MeView(msgspec.Struct, frozen=True, kw_only=True):
    active_task_leases: list[dict[str, Any]]
    capabilities: list[Capability]
    channels: list[dict[str, Any]]
    limits: Limits
    self: SelfView
    session: SessionView
    workspace: WorkspaceRef


class Me(msgspec.Struct, frozen=True, kw_only=True):
    me: MeView


class Diagnostic(msgspec.Struct, frozen=True, kw_only=True):
    category: str  # "auth", "validation", "not_found", "conflict", "lease", "unavailable", "internal"
    code: str
    data_freshness: str  # "live": what the error says is as of the request
    doc_url: str
    evidence: dict[str, Any]
    id: str
    message: str
    severity: str  # "error" | "warning"
    suggested_command: str | None
    title: str


class DiagnosticError(msgspec.Struct, frozen=True, kw_only=True):
    """Every `/api/agent/*` error body."""

    diagnostic: Diagnostic
    error: str
