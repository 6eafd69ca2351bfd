"""Spec 002's wire format (the agent runtime, `/api/agent/*`): sessions, the views an agent
reads, and the diagnostic error envelope. Keys are snake_case, as the spec writes them; times
are RFC 3339."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

from contracts.payloads.agent_session import PermissionPolicy, SpawnBudget

Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
# A path in the workspace ("." or "/" is all of it): no `..` segment, so none climbs out of another.
WorkspacePath = Annotated[
    str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^(?!.*(^|/)\.\.(/|$))[^\x00-\x1f]+$")
]
Names = Annotated[list[Name], msgspec.Meta(max_length=100)]
# A spawned child lives at most a week: what it was spawned for is done, or the TTL stops it.
MAX_TTL_SECONDS = 7 * 24 * 3600


class Permissions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a session may use (`lineage.permission_policy`). A list left out is none of that kind."""

    tools: Names = []
    skills: Names = []
    mcp_servers: Names = []
    network_channels: Names = []
    sandbox_profiles: Names = []
    workspace_paths: Annotated[list[WorkspacePath], msgspec.Meta(max_length=100)] = []


class SpawnBudgetLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A root session's spawn budget, which its descendants inherit; a limit left out is the
    workspace's (`GET /api/agent/coordinator/config`)."""

    max_children: Annotated[int, msgspec.Meta(ge=0, le=100)] | None = None  # at once; 0: no spawning
    max_depth: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None  # below the root; 0: no spawning
    max_active_per_workspace: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    ttl_seconds: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_SECONDS)] | None = None


class NewAgentSession(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/v1/workspaces/{workspaceID}/agent-sessions`: a session for an agent process."""

    name: Name
    agent_name: Name = "agent"
    model: Annotated[str, msgspec.Meta(max_length=200)] = ""
    provider: Annotated[str, msgspec.Meta(max_length=100)] = ""
    # The agent types and tools it can run (claims are filtered by them).
    capabilities: Annotated[list[Name], msgspec.Meta(max_length=100)] = []
    # Factories: a frozen Struct holding lists cannot be hashed, and Litestar's schema hashes defaults.
    permissions: Permissions = msgspec.field(default_factory=Permissions)  # none when left out
    spawn_budget: SpawnBudgetLimits = msgspec.field(default_factory=SpawnBudgetLimits)


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


class CoordinatorView(msgspec.Struct, frozen=True, kw_only=True):
    """A workspace's coordinator settings: the spawn budget its sessions get unless made with
    their own, and the agent that coordinates (`coordinator` in the workspace's config)."""

    agent_name: str
    default_ttl_seconds: int
    enabled: bool
    max_active_sessions_per_workspace: int
    max_children: int
    model: str
    provider: str
    source: str  # "workspace": from the workspace's config; "default": the product's
    workspace_id: str


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


# --- coordination channels (`/api/agent/channels`) ---------------------------------------

# The kinds of message a channel takes (`libs.domain.channel.KINDS`, which a test keeps equal).
MessageKind = Literal["status", "question", "answer", "handoff", "note"]
MESSAGE_KINDS: tuple[str, ...] = get_args(MessageKind)
# A sender's is any string: the server refuses one not in the list with a diagnostic naming the
# list (a Literal would be refused first, by a message that does not).
SentKind = Annotated[str, msgspec.Meta(description="One of " + ", ".join(MESSAGE_KINDS))]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]


class ChannelView(msgspec.Struct, frozen=True, kw_only=True):
    allowed_message_kinds: list[MessageKind]
    channel: str  # what the routes take as `{channel}`: `task_<task id>` or `run_<run id>`
    display_name: str
    id: str  # the same
    last_activity_at: datetime | None  # its last message's time; None before any
    purpose: str
    run_id: str | None
    task_id: str
    workflow_id: str | None
    workspace_id: str


class ChannelList(msgspec.Struct, frozen=True, kw_only=True):
    channels: list[ChannelView]


class OutgoingMetadata(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a sender says of its message. The channel, task and run are the channel's: given,
    they must be its own."""

    message_kind: SentKind
    correlation_id: Token | None = None  # a new thread's (one is made when none is given)
    coordination_channel_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None
    ext: dict[str, Any] = {}  # the sender's own keys, returned as sent


class NewMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/agent/channels/{channel}/send`."""

    body: Any
    metadata: OutgoingMetadata


class NewReply(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/agent/channels/reply`: a message on the channel of the one it answers, to its
    sender, with its correlation id."""

    body: Any
    metadata: OutgoingMetadata
    reply_to_message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]


class MessageMetadata(msgspec.Struct, frozen=True, kw_only=True):
    coordination_channel_id: str
    correlation_id: str
    ext: dict[str, Any]  # the sender's; a reply's also says what it answers (`reply_to_message_id`)
    message_kind: MessageKind
    run_id: str | None
    task_id: str
    workflow_id: str | None


class ChannelMessage(msgspec.Struct, frozen=True, kw_only=True):
    body: Any
    channel_id: str
    from_session_id: str
    message_id: str  # `<channel>:<n>`
    metadata: MessageMetadata
    timestamp: datetime
    to_session_id: str | None  # a reply's: the sender of the message it answers


class SentMessage(msgspec.Struct, frozen=True, kw_only=True):
    message: ChannelMessage


class ReceivedMessages(msgspec.Struct, frozen=True, kw_only=True):
    messages: list[ChannelMessage]


class ContextSection(msgspec.Struct, frozen=True, kw_only=True):
    limit: int
    returned: int
    truncated: bool


class InboxItem(msgspec.Struct, frozen=True, kw_only=True):
    channel_id: str
    kind: MessageKind
    message_id: str
    metadata: MessageMetadata
    preview: str
    timestamp: datetime


class InboxSummary(msgspec.Struct, frozen=True, kw_only=True):
    """The `inbox_summary` section of spec 002's `context`: what the session has not received
    yet, newest first, and how many there are."""

    items: list[InboxItem]
    section: ContextSection
    unread_count: int
