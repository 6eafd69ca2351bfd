"""A workspace's settings as spec 003's `/api/config` reads and writes them: three keys of the
workspace's config (the one spec 001's `.../orchestration/config` shows), checked alike by both."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from contracts.repos import ALLOWED_REPOSITORY_PATTERN
from contracts.tasks import AgentRuntime, NonEmpty, Planner, Provider, Runner

DEFAULT_COMMAND_PREFIX = "/agent"
# The config keys `/api/config` owns; a PUT replaces these and leaves every other key alone.
SETTINGS_KEYS = ("commandPrefix", "defaultAgentConfig", "allowedRepositories")
MAX_ALLOWED_REPOSITORIES = 1000

CommandPrefix = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=32,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="What an issue comment starts with to be a command (`/agent codegen ...`): no space.",
    ),
]
RepositoryPattern = Annotated[
    str,
    msgspec.Meta(
        pattern=ALLOWED_REPOSITORY_PATTERN,
        description="`owner/name`, or `owner/*` for every repository of the owner.",
    ),
]
AllowedRepositories = Annotated[
    list[RepositoryPattern],
    msgspec.Meta(
        max_length=MAX_ALLOWED_REPOSITORIES,
        description="The repositories the workspace's agents may work on; empty: every repository of the "
        "workspace's GitHub installations.",
    ),
]


class DefaultAgentConfig(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """The task config the workspace's tasks from GitHub start from: spec 000's keys (`AgentConfig`),
    each checked as a task's is. Only the keys given are kept, and read back as given; a key left
    out takes the task's own default, and a key spec 000 does not know is refused, so a misspelt
    one does not pass unnoticed."""

    model: NonEmpty | UnsetType = UNSET
    provider: Provider | UnsetType = UNSET
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=200_000)] | UnsetType = UNSET
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | UnsetType = UNSET
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] | UnsetType = UNSET
    planner: Planner | UnsetType = UNSET
    agent_runtime: AgentRuntime | UnsetType = UNSET
    runner: Runner | UnsetType = UNSET


class WorkspaceSettings(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """`GET` and `PUT /api/config`. A PUT replaces all three; a key it leaves out takes its default."""

    command_prefix: CommandPrefix = DEFAULT_COMMAND_PREFIX
    default_agent_config: DefaultAgentConfig = msgspec.field(default_factory=DefaultAgentConfig)
    allowed_repositories: AllowedRepositories = msgspec.field(default_factory=list)
