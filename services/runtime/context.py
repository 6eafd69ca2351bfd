"""`GET /api/agent/context` (spec 002): what an agent reads before it works. Who it is (self,
session, soul, limits, workspace), the run it holds and its task, the coordination channel of that
run, what it has not read yet on its workspace's channels (the inbox summary), and the peers it
may coordinate with. Each list is a section of at most `limit` items that says how many it
returned and whether there were more (`truncated`).

The session is read from the event store, the rest from the read models once they hold what was
written before the request (a claim, a message a moment ago)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter

from contracts.agent_context import (
    CapabilitiesSection,
    Context,
    ContextView,
    CoordinationChannelSection,
    Peer,
    PeerRoster,
    Provenance,
    TaskSection,
)
from contracts.agent_runtime import ContextSection, InboxItem, InboxSummary
from libs.domain.channel import TASK
from libs.leases.clock import now_ms
from libs.readmodels import agent_sessions, channel_reads, lease_reads
from libs.web.diagnostics import SUGGESTED_COMMAND
from libs.web.openapi import ERRORS
from services.runtime import souls
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.channel_views import channel_view, metadata_view, preview, time_of
from services.runtime.lease_views import lease_view, task_channel, task_ref
from services.runtime.me import Standing, capabilities, limits, self_view, session_view, standing, workspace_ref
from services.runtime.sessions import CONTEXT_SECTION_LIMIT
from services.runtime.state import RuntimeState, runtime_state

# Who wrote the view: this service, from the event store (the session) and the read models.
SOURCE = "orchestrator-runtime"
CONTEXT_ERRORS = {
    ERRORS: {
        **SESSION_ERRORS[ERRORS],
        400: f"`limit` is not a whole number from 1 to {CONTEXT_SECTION_LIMIT}.",
    },
    SUGGESTED_COMMAND: f"GET /api/agent/context?limit={CONTEXT_SECTION_LIMIT}",
}
Limit = Annotated[
    int,
    QueryParameter(
        ge=1,
        le=CONTEXT_SECTION_LIMIT,
        description=f"At most this many items in each section (1 to {CONTEXT_SECTION_LIMIT})",
    ),
]


@get("/api/agent/context", opt=CONTEXT_ERRORS)
async def context(request: Request[Any, Any, Any], limit: Limit = CONTEXT_SECTION_LIMIT) -> Context:
    """The calling session's context: who it is, the run it holds and its channel, its inbox
    summary and its peers, each list at most `limit` long."""
    state = runtime_state(request)
    now = await standing(state, session_of(request))
    soul, inbox, peers, (channel, task) = await asyncio.gather(
        souls.summary_of(state.store, now.session),
        _inbox(state, now, limit),
        _peers(state, now, limit),
        _held(state, now),
    )
    caps = capabilities(now.session)
    return Context(
        context=ContextView(
            capabilities=CapabilitiesSection(capabilities=caps[:limit], section=_section(limit, len(caps))),
            coordination_channel=channel,
            inbox_summary=inbox,
            limits=limits(now.session),
            peer_roster=peers,
            provenance=Provenance(generated_at=datetime.now(UTC), source=SOURCE),
            self=self_view(now.session),
            session=session_view(now),
            soul=soul,
            task=task,
            workspace=workspace_ref(now),
        )
    )


def _section(limit: int, total: int) -> ContextSection:
    return ContextSection(limit=limit, returned=min(limit, total), truncated=total > limit)


async def _inbox(state: RuntimeState, now: Standing, limit: int) -> InboxSummary:
    """What the session has not received yet on the workspace's channels (what `recv` would
    return), newest first, and how many."""
    session = now.session
    rows, unread = await channel_reads.inbox(state.pool, str(session.id), session.workspace_id, limit)
    items = [
        InboxItem(
            channel_id=row.channel,
            kind=row.kind,
            message_id=row.message_id,
            metadata=metadata_view(row),
            preview=preview(row.body),
            timestamp=time_of(row.occurred_at),
        )
        for row in rows
    ]
    return InboxSummary(items=items, section=_section(limit, unread), unread_count=unread)


async def _peers(state: RuntimeState, now: Standing, limit: int) -> PeerRoster:
    """The workspace's other sessions not stopped, newest first; each with the coordination
    channel of the run it holds, if it holds one."""
    session = now.session
    rows, total = await agent_sessions.peers(state.pool, session.workspace_id, str(session.id), limit, now_ms())
    peers = [
        Peer(
            capabilities=row.capabilities,
            channel_id=f"{TASK}_{row.held_task_id}" if row.held_task_id else None,
            display_name=row.name,
            peer_id=row.session_id,
            session_id=row.session_id,
        )
        for row in rows
    ]
    return PeerRoster(peers=peers, section=_section(limit, total))


async def _held(state: RuntimeState, now: Standing) -> tuple[CoordinationChannelSection, TaskSection]:
    """The run it holds (the newest, should it hold several), its task, and its coordination
    channel (its task's, with the channel's activity once a message opened it)."""
    if not now.held:
        return CoordinationChannelSection(available=False, channel=None), TaskSection(
            available=False, bundle=None, lease=None, task=None
        )
    held = now.held[-1]
    run, workspace_id = held.run, now.session.workspace_id
    opened, row = await asyncio.gather(
        channel_reads.channel(state.pool, workspace_id, f"{TASK}_{run.task_id}"),
        asyncio.to_thread(lease_reads.task_row, state.store, run.task_id),
    )
    channel = channel_view(workspace_id, opened) if opened else task_channel(workspace_id, run.task_id)
    lease = lease_view(run, held.lease_until, held.heartbeat_at, channel)
    return (
        CoordinationChannelSection(available=True, channel=channel),
        TaskSection(available=True, bundle=None, lease=lease, task=task_ref(run, row)),
    )
