"""Spec 002's views of an agent session by itself: `GET /api/agent/me` (the session, its
lineage, the leases it holds, its channels) and `GET /api/agent/context` (what an agent reads
before it works: sections of at most `limit` items, each saying how many it returned and whether
there were more). Keys are snake_case, as the spec writes them; times are RFC 3339."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from contracts.agent_runtime import (
    Capability,
    ChannelView,
    ContextSection,
    CoordinatorView,
    InboxSummary,
    Limits,
    SelfView,
    SessionView,
    WorkspaceRef,
)
from contracts.agent_tasks import LeaseView, TaskRef

ValidationStatus = Literal["missing", "valid", "invalid"]


class MeView(msgspec.Struct, frozen=True, kw_only=True):
    active_task_leases: list[LeaseView]  # claimed, their lease not passed
    capabilities: list[Capability]
    # Its leases' tasks' channels first, then those it posted on or received from, latest first.
    channels: list[ChannelView]
    coordinator: CoordinatorView
    limits: Limits
    self: SelfView
    session: SessionView
    workspace: WorkspaceRef


class Me(msgspec.Struct, frozen=True, kw_only=True):
    me: MeView


class SoulSummary(msgspec.Struct, frozen=True):
    """The session's soul in short (`context.soul`; `GET /api/agent/soul` shows it whole)."""

    present: bool
    enabled: bool
    active: bool
    valid: bool
    validation_status: ValidationStatus
    source_path: str
    digest: str
    config_digest: str
    role: str
    tone: tuple[str, ...]
    principles: tuple[str, ...]
    truncated: bool
    max_bytes: int
    max_body_bytes: int
    snapshot_id: str | None


class CapabilitiesSection(msgspec.Struct, frozen=True, kw_only=True):
    capabilities: list[Capability]
    section: ContextSection


class CoordinationChannelSection(msgspec.Struct, frozen=True, kw_only=True):
    """The channel of the run the session holds a lease on (its task's); none without one."""

    available: bool
    channel: ChannelView | None


class Peer(msgspec.Struct, frozen=True, kw_only=True):
    capabilities: list[str]
    channel_id: str | None  # the coordination channel of the lease it holds, if it holds one
    display_name: str
    peer_id: str  # a peer is a session: its id
    session_id: str


class PeerRoster(msgspec.Struct, frozen=True, kw_only=True):
    """The workspace's other sessions not stopped, newest first."""

    peers: list[Peer]
    section: ContextSection


class Provenance(msgspec.Struct, frozen=True, kw_only=True):
    generated_at: datetime
    source: str  # what the view was read from


class TaskSection(msgspec.Struct, frozen=True, kw_only=True):
    """The run the session holds a lease on, and its task; `available: false` without one."""

    available: bool
    bundle: None  # the task's history bundle: not built (docs/agent-runtime.md §5)
    lease: LeaseView | None
    task: TaskRef | None


class ContextView(msgspec.Struct, frozen=True, kw_only=True):
    capabilities: CapabilitiesSection
    coordination_channel: CoordinationChannelSection
    inbox_summary: InboxSummary
    limits: Limits
    peer_roster: PeerRoster
    provenance: Provenance
    self: SelfView
    session: SessionView
    soul: SoulSummary
    task: TaskSection
    workspace: WorkspaceRef


class Context(msgspec.Struct, frozen=True, kw_only=True):
    context: ContextView
