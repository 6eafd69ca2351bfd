"""Workspaces: the admin API's bodies and the orchestration config's known keys (spec 001)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contracts.agent_runtime import MAX_TTL_SECONDS
from contracts.fly import FlyConfig
from contracts.tasks import NO_NUL, NonEmpty, Planner, Provider
from contracts.workspace_settings import AllowedRepositories, CommandPrefix, DefaultAgentConfig

WorkspaceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Label = Annotated[str, msgspec.Meta(max_length=200, pattern=NO_NUL)]
Usd = Annotated[float, msgspec.Meta(ge=0.0)]
NO_CONTROL = r"^[^\x00-\x1f]+$"


class NewWorkspace(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    workspace_id: WorkspaceId | None = None  # generated (`ws_...`) when not given
    name: Label | None = None
    key_label: Label | None = None


class NewKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Label | None = None


class IssuedKey(msgspec.Struct, frozen=True, rename="camel"):
    """A key as it is shown: once, when issued."""

    workspace_id: str
    key_id: str
    api_key: str


class KeyInfo(msgspec.Struct, frozen=True, rename="camel"):
    key_id: str
    label: str | None
    created_at: int
    revoked_at: int | None


class WorkspaceInfo(msgspec.Struct, frozen=True, rename="camel"):
    workspace_id: str
    name: str
    created_at: int
    keys: list[KeyInfo]


class Revoked(msgspec.Struct, frozen=True):
    revoked: bool


class CoordinatorSettings(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`coordinator` in a workspace's config (spec 002): the spawn budget its agent sessions get
    when they are made without one, and the agent that coordinates. `enabled: false` makes such
    sessions unable to spawn."""

    enabled: bool | None = None
    agent_name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_CONTROL)] | None = None
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_CONTROL)] | None = None
    provider: Provider | None = None
    max_children: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None
    max_spawn_depth: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    max_active_sessions_per_workspace: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    default_ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)] | None = None


class OrchestrationConfig(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """The config keys the product knows and checks; any other key is kept as given."""

    budget_usd: Usd | None = None  # the workspace's spending cap
    task_budget_usd: Usd | None = None  # each task's spending cap
    on_budget_exceeded: Literal["pause", "fail"] | None = None
    max_concurrent_subtasks: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    default_provider: Provider | None = None  # for tasks whose config names none
    default_model: NonEmpty | None = None
    planner: Planner | None = None
    review_policy: Literal["required", "auto_approve"] | None = None
    question_expiry_seconds: Annotated[int, msgspec.Meta(ge=1, le=30 * 24 * 3600)] | None = None
    coordinator: CoordinatorSettings | None = None  # agent sessions' spawning (spec 002)
    # Spec 003's settings (`/api/config`, `contracts.workspace_settings`): GitHub intake.
    command_prefix: CommandPrefix | None = None
    default_agent_config: DefaultAgentConfig | None = None
    allowed_repositories: AllowedRepositories | None = None
    fly: FlyConfig | None = None  # container workers on Fly.io (`/api/config/fly`)


class Purged(msgspec.Struct, frozen=True):
    """Spec 001's purge answer: what was cleared."""

    purged: list[str]
