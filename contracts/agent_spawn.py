"""Spec 002's spawn and the full view of a session: `POST /api/agent/spawn`, its answer, the
workspace's session list, and `GET /api/agent/coordinator/config`. Keys are snake_case, as the
spec writes them; times are RFC 3339."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from contracts.agent_runtime import MAX_TTL_SECONDS, CoordinatorView, Lineage, Name, Permissions
from contracts.payloads.agent_session import PermissionPolicy

Role = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class SpawnRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A child of the calling session. Its permissions must be within the caller's; it inherits
    the caller's model, provider, capabilities and spawn budget."""

    agent_name: Name | None = None  # the caller's when left out
    auto_stop_on_parent: bool = True  # stopped when the caller stops
    permissions: Permissions | None = None  # the caller's when left out
    spawn_role: Role | None = None  # what it is for ("reviewer"); also its name
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)] | None = None  # the budget's when left out


class AcpConfigValue(msgspec.Struct, frozen=True, kw_only=True):
    description: str | None
    label: str
    value: str


class AcpConfigOption(msgspec.Struct, frozen=True, kw_only=True):
    current: str | None
    description: str | None
    id: str
    kind: str
    label: str
    values: list[AcpConfigValue]


class AcpCaps(msgspec.Struct, frozen=True, kw_only=True):
    config_options: list[AcpConfigOption]
    supported_models: list[str]
    supported_modes: list[str]
    supports_load_session: bool


class Activity(msgspec.Struct, frozen=True, kw_only=True):
    """What the session is doing; a session not in a turn has only its times."""

    current_tool: str | None
    deadline_at: datetime | None  # its TTL's end
    elapsed_ms: int  # since it was made
    elapsed_seconds: int
    idle_seconds: int  # since its last change
    iteration_current: int | None
    iteration_max: int | None
    last_activity_at: datetime
    last_activity_detail: str | None
    last_activity_kind: str  # "created" | "spawned_child" | "stopped" | ...
    last_progress_at: datetime | None
    tool_call_id: str | None
    turn_id: str | None
    turn_source: str | None
    turn_started_at: datetime | None


class Failure(msgspec.Struct, frozen=True, kw_only=True):
    crash_bundle_path: str | None
    kind: str
    summary: str


class Health(msgspec.Struct, frozen=True, kw_only=True):
    active_prompt: bool
    agent_name: str
    attachable: bool
    eligible_for_wake: bool
    health: str  # "healthy" | "stopped"
    ineligibility_reason: str | None  # "session_stopped" when it cannot be woken
    last_activity_at: datetime
    last_error: str | None
    last_presence_at: datetime
    session_id: str
    state: str
    updated_at: datetime
    workspace_id: str


class Sandbox(msgspec.Struct, frozen=True, kw_only=True):
    backend: str
    instance_id: str | None
    last_sync_error: str | None
    profile: str
    provider_state_json: Any
    sandbox_id: str | None
    state: str


class SessionDetail(msgspec.Struct, frozen=True, kw_only=True):
    """A session as a whole: the spawn answer's, and the workspace's session list's."""

    acp_caps: AcpCaps
    acp_session_id: str | None
    activity: Activity
    agent_name: str
    attach_expires_at: datetime | None
    attachable: bool
    attached_to: str | None
    badge: str | None
    channel: str | None
    created_at: datetime
    failure: Failure | None
    health: Health
    id: str
    lineage: Lineage
    model: str
    name: str
    provider: str
    reasoning_effort: str | None
    sandbox: Sandbox | None
    state: str  # "starting" | "idle" | "running" | "stopped"
    stop_detail: str | None
    stop_reason: str | None  # "stopped_by_user" | "parent_stopped" | "ttl_expired"
    type: str  # "user": made by a key holder; "spawned": by another session
    updated_at: datetime
    workspace_id: str
    workspace_path: str | None


class Spawn(msgspec.Struct, frozen=True, kw_only=True):
    lineage: Lineage
    permissions: PermissionPolicy  # what the child was granted
    session: SessionDetail


class Spawned(msgspec.Struct, frozen=True, kw_only=True):
    """The spawn answer, and the child's bearer token: shown this once, kept only as a hash (the
    child's agent process acts with it)."""

    spawn: Spawn
    token: str


class SessionList(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /api/v1/workspaces/{workspaceID}/agent-sessions`: newest first."""

    sessions: list[SessionDetail]


class Coordinator(msgspec.Struct, frozen=True, kw_only=True):
    coordinator: CoordinatorView
