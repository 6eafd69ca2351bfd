"""A session's views: its lineage (on every one of them) and the whole session (the spawn answer,
the workspace's session list), built alike from its aggregate or its read-model row."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from contracts.agent_runtime import Lineage, SessionView
from contracts.agent_spawn import AcpCaps, Activity, Health, SessionDetail
from contracts.payloads.agent_session import AgentSessionCreated
from libs.domain.agent_session import IDLE, STOPPED, AgentSession
from libs.readmodels.agent_sessions import SessionRow


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


def summary(row: SessionRow) -> SessionView:
    """The session as `me` shows it."""
    return SessionView(
        id=row.session_id,
        name=row.details.name,
        state=row.state,
        type=row.details.type,
        channel=None,
        created_at=_time(row.created_at),
        updated_at=_time(row.updated_at),
        lineage=lineage(row.details),
        stop_reason=row.stop_reason,
        stop_detail=row.stop_detail,
    )


def detail(row: SessionRow, now: datetime | None = None) -> SessionDetail:
    """The whole session. Its activity's clocks are read at `now`; what no agent process has
    reported (a turn, a tool, a sandbox) is null."""
    d = row.details
    now = now or datetime.now(UTC)
    created, updated = _time(row.created_at), _time(row.updated_at)
    elapsed_ms = max(0, _ms(now) - row.created_at)
    stopped = row.state == STOPPED
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
            idle_seconds=max(0, _ms(now) - row.updated_at) // 1000,
            iteration_current=None,
            iteration_max=None,
            last_activity_at=updated,
            last_activity_detail=row.stop_detail if stopped else None,
            last_activity_kind=row.last_activity,
            last_progress_at=None,
            tool_call_id=None,
            turn_id=None,
            turn_source=None,
            turn_started_at=None,
        ),
        agent_name=d.agent_name,
        attach_expires_at=None,
        attachable=False,
        attached_to=None,
        badge=d.spawn_role,
        channel=None,
        created_at=created,
        failure=None,
        health=Health(
            active_prompt=False,
            agent_name=d.agent_name,
            attachable=False,
            eligible_for_wake=row.state == IDLE,
            health="stopped" if stopped else "healthy",
            ineligibility_reason="session_stopped" if stopped else None,
            last_activity_at=updated,
            last_error=None,
            last_presence_at=updated,
            session_id=row.session_id,
            state=row.state,
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
        state=row.state,
        stop_detail=row.stop_detail,
        stop_reason=row.stop_reason,
        type=d.type,
        updated_at=updated,
        workspace_id=row.workspace_id,
        workspace_path=None,
    )
