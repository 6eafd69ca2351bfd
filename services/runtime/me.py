"""`GET /api/agent/me` (spec 002): the calling session, its lineage and limits, the leases it
holds and its channels. And what `context` shows alike (`Standing`, the parts of both views)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, get

from contracts.agent_context import Me, MeView
from contracts.agent_runtime import Capability, ChannelView, Limits, SelfView, SessionView, WorkspaceRef
from libs.domain.agent_session import AgentSession
from libs.domain.channel import TASK
from libs.leases.clock import now_ms
from libs.readmodels import agent_sessions, channel_reads, session_activity, workspace_reads
from libs.readmodels.channel_reads import ChannelRow
from libs.readmodels.session_activity import NONE, LeaseActivity
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.channel_views import channel_view
from services.runtime.coordinator import coordinator_from
from services.runtime.lease_views import lease_view
from services.runtime.leases import HeldLease, held_leases
from services.runtime.sessions import CONTEXT_SECTION_LIMIT, MAX_ACTIVE_LEASES
from services.runtime.state import RuntimeState, runtime_state
from services.runtime.views import row_of, summary

# The longest a view waits for the read models to hold what was written before it (a claim, a
# message), so that it shows them.
REACH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Standing:
    """Where a session stands now: its workspace (as the read models hold it), the leases it
    holds (confirmed by their runs) and what it did with leases lately."""

    session: AgentSession
    workspace: dict[str, Any] | None
    held: list[HeldLease]
    leases: LeaseActivity

    @property
    def held_channels(self) -> list[str]:
        """The coordination channels of the runs it holds: their tasks'."""
        return list(dict.fromkeys(f"{TASK}_{h.run.task_id}" for h in self.held))


async def standing(state: RuntimeState, session: AgentSession) -> Standing:
    async with state.pool.connection() as conn:
        await agent_sessions.reach_head(conn, REACH_TIMEOUT_S)
    session_id = str(session.id)
    found, held, activity = await asyncio.gather(
        workspace_reads.workspace(state.pool, session.workspace_id),
        asyncio.to_thread(held_leases, state.store, session_id),
        session_activity.activity(state.pool, [session_id], now_ms()),
    )
    leases = activity.get(session_id, NONE)
    if not held:
        # A run that ended a moment ago, which the lease read model may still show as held.
        leases = msgspec.structs.replace(leases, held_run_id=None, held_task_id=None, held_since=None)
    return Standing(session=session, workspace=found, held=held, leases=leases)


@get("/api/agent/me", opt=SESSION_ERRORS)
async def me(request: Request[Any, Any, Any]) -> Me:
    """The calling session: itself, its lineage and limits, the leases it holds, its channels."""
    state = runtime_state(request)
    now = await standing(state, session_of(request))
    channels = await session_channels(state, now, CONTEXT_SECTION_LIMIT)
    by_name = {c.channel: c for c in channels}
    return Me(
        me=MeView(
            active_task_leases=[
                lease_view(h.run, h.lease_until, h.heartbeat_at, by_name.get(f"{TASK}_{h.run.task_id}"))
                for h in now.held
            ],
            capabilities=capabilities(now.session),
            channels=channels,
            coordinator=coordinator_from(now.session.workspace_id, (now.workspace or {}).get("config") or {}).view,
            limits=limits(now.session),
            self=self_view(now.session),
            session=session_view(now),
            workspace=workspace_ref(now),
        )
    )


async def session_channels(state: RuntimeState, now: Standing, limit: int) -> list[ChannelView]:
    """Its leases' tasks' channels first (opened by a message or not yet), then those it posted
    on or received from, latest activity first: at most `limit`."""
    session = now.session
    held = now.held_channels
    rows = await channel_reads.session_channels(state.pool, str(session.id), session.workspace_id, held, limit)
    opened = {row.channel: row for row in rows}
    first = [opened.get(name) or ChannelRow(name, name.removeprefix(f"{TASK}_"), None, None) for name in held]
    rest = [row for row in rows if row.channel not in held]
    return [channel_view(session.workspace_id, row) for row in [*first, *rest][:limit]]


def capabilities(session: AgentSession) -> list[Capability]:
    return [Capability(id=c, source="session", summary=c) for c in session.details.capabilities]


def limits(session: AgentSession) -> Limits:
    budget = session.details.spawn_budget
    return Limits(
        context_section_limit=CONTEXT_SECTION_LIMIT,
        max_active_task_leases=MAX_ACTIVE_LEASES,
        max_children=budget.max_children,
        max_spawn_depth=budget.max_depth,
    )


def self_view(session: AgentSession) -> SelfView:
    d = session.details
    return SelfView(agent_name=d.agent_name, model=d.model, provider=d.provider, session_id=str(session.id))


def session_view(now: Standing) -> SessionView:
    return summary(row_of(now.session), now.leases)


def workspace_ref(now: Standing) -> WorkspaceRef:
    ws = now.session.workspace_id
    return WorkspaceRef(id=ws, name=now.workspace["name"] if now.workspace else ws, root_dir="")
