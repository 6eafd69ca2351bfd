"""A session's views: its lineage (on every one of them) and the whole session (the spawn answer,
the workspace's session list), built alike from its aggregate or its read-model row, with what
it does with leases (`libs.readmodels.session_activity`): its state is `running` while it holds
one, and its clocks count its claims, heartbeats and ends."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from contracts.agent_runtime import Lineage, SessionView
from contracts.agent_spawn import AcpCaps, Activity, Health, SessionDetail
from contracts.payloads.agent_session import AgentSessionCreated
from libs.domain.agent_session import IDLE, RUNNING, STOPPED, AgentSession
from libs.domain.channel import TASK
from libs.readmodels.agent_sessions import SessionRow
from libs.readmodels.session_activity import NONE, LeaseActivity, state_now


def _time(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def lineage(details: AgentSessionCreated) -> Lineage:
    return Lineage(
        auto_stop_on_parent=details.auto_stop_on_parent,
        parent_session_id=details.parent_session_id,
        permission_policy=details.permissions,
        root_session_id=details.root_session_id,
        spawn_budget=details.spawn_budget,
        spawn_depth=details.spawn_depth,
        spawn_role=details.spawn_role,
        ttl_expires_at=_time(details.ttl_expires_at) if details.ttl_expires_at else None,
    )


def row_of(session: AgentSession) -> SessionRow:
    """The aggregate as its row would hold it (the token's hash left out, as there)."""
    return SessionRow(
        session_id=str(session.id),
        workspace_id=session.workspace_id,
        state=session.state,
        created_at=_ms(session.created_on),
        updated_at=_ms(session.modified_on),
        last_activity=session.last_activity,
        stop_reason=session.stopped.reason if session.stopped else None,
        stop_detail=session.stopped.detail if session.stopped else None,
        details=msgspec.structs.replace(session.details, token_hash=""),
    )


def summary(row: SessionRow, leases: LeaseActivity = NONE) -> SessionView:
    """The session as `me` shows it, its state as of `leases` (none: a session just made, or
    stopped, holds none)."""
    return SessionView(
        id=row.session_id,
        name=row.details.name,
        state=state_now(row.state, leases),
        type=row.details.type,
        channel=held_channel(leases),
        created_at=_time(row.created_at),
        updated_at=_time(_updated(row, leases)),
        lineage=lineage(row.details),
        stop_reason=row.stop_reason,
        stop_detail=row.stop_detail,
    )


def held_channel(leases: LeaseActivity) -> str | None:
    """The coordination channel of the run it holds: its task's, which the claim named."""
    return f"{TASK}_{leases.held_task_id}" if leases.held_task_id else None


def _updated(row: SessionRow, leases: LeaseActivity) -> int:
    """Its last change, a lease's claim or end included (they change its state)."""
    return max(row.updated_at, leases.last_claimed_at or 0, leases.last_ended_at or 0)


def _latest(row: SessionRow, leases: LeaseActivity) -> tuple[int, str, str | None]:
    """What it did last: when, its kind, and what it was about."""
    own = row.stop_detail if row.state == STOPPED else None
    done: list[tuple[int, str, str | None]] = [(row.updated_at, row.last_activity, own)]
    if leases.last_claimed_at is not None:
        held = f"run {leases.held_run_id} of task {leases.held_task_id}" if leases.running else None
        done.append((leases.last_claimed_at, "lease_claimed", held))
    if leases.last_heartbeat_at is not None:
        done.append((leases.last_heartbeat_at, "lease_heartbeat", None))
    if leases.last_ended_at is not None:
        done.append((leases.last_ended_at, f"lease_{leases.last_ended_status}", None))
    # At the same millisecond the later step wins: a run's end over the heartbeat its `complete`
    # sent to keep the lease through the checks.
    return max(enumerate(done), key=lambda d: (d[1][0], d[0]))[1]


def _presence(row: SessionRow, leases: LeaseActivity) -> int:
    """When its agent process was last heard from: made, spawning, claiming, heartbeating or
    ending a run (not a stop by a key holder, nor a lease that lapsed)."""
    heard = [row.updated_at if row.last_activity != "stopped" else row.created_at]
    heard += [t for t in (leases.last_claimed_at, leases.last_heartbeat_at) if t is not None]
    if leases.last_ended_at is not None and leases.last_ended_status != "expired":
        heard.append(leases.last_ended_at)
    return max(heard)


def detail(row: SessionRow, leases: LeaseActivity = NONE, now: datetime | None = None) -> SessionDetail:
    """The whole session, its state and clocks as of `leases` and `now`. What no agent process
    reports to the runtime (a tool, an iteration, a sandbox) is null; its turn is the run it
    holds."""
    d = row.details
    now = now or datetime.now(UTC)
    state = state_now(row.state, leases)
    created, updated = _time(row.created_at), _time(_updated(row, leases))
    latest_at, latest_kind, latest_detail = _latest(row, leases)
    progress = [leases.last_heartbeat_at] if leases.last_heartbeat_at is not None else []
    if leases.last_ended_at is not None and leases.last_ended_status != "expired":
        progress.append(leases.last_ended_at)
    elapsed_ms = max(0, _ms(now) - row.created_at)
    stopped, running = state == STOPPED, state == RUNNING
    return SessionDetail(
        acp_caps=AcpCaps(
            config_options=[],
            supported_models=[d.model] if d.model else [],
            supported_modes=[],
            supports_load_session=False,
        ),
        acp_session_id=None,
        activity=Activity(
            current_tool=None,
            deadline_at=_time(d.ttl_expires_at) if d.ttl_expires_at else None,
            elapsed_ms=elapsed_ms,
            elapsed_seconds=elapsed_ms // 1000,
            idle_seconds=max(0, _ms(now) - latest_at) // 1000,
            iteration_current=None,
            iteration_max=None,
            last_activity_at=_time(latest_at),
            last_activity_detail=latest_detail,
            last_activity_kind=latest_kind,
            last_progress_at=_time(max(progress)) if progress else None,
            tool_call_id=None,
            turn_id=leases.held_run_id,
            turn_source="lease" if running else None,
            turn_started_at=_time(leases.held_since) if leases.held_since is not None else None,
        ),
        agent_name=d.agent_name,
        attach_expires_at=None,
        attachable=False,
        attached_to=None,
        badge=d.spawn_role,
        channel=held_channel(leases),
        created_at=created,
        failure=None,
        health=Health(
            active_prompt=running,
            agent_name=d.agent_name,
            attachable=False,
            eligible_for_wake=state == IDLE,
            health="stopped" if stopped else "healthy",
            ineligibility_reason="session_stopped" if stopped else "session_prompt_active" if running else None,
            last_activity_at=_time(latest_at),
            last_error=None,
            last_presence_at=_time(_presence(row, leases)),
            session_id=row.session_id,
            state=state,
            updated_at=updated,
            workspace_id=row.workspace_id,
        ),
        id=row.session_id,
        lineage=lineage(d),
        model=d.model,
        name=d.name,
        provider=d.provider,
        reasoning_effort=None,
        sandbox=None,
        state=state,
        stop_detail=row.stop_detail,
        stop_reason=row.stop_reason,
        type=d.type,
        updated_at=updated,
        workspace_id=row.workspace_id,
        workspace_path=None,
    )
