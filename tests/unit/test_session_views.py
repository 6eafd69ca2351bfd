"""A session's views with what it does with leases: `running` while it holds one, `idle` after,
`stopped` whatever it held; its clocks and last activity from its claims, heartbeats and ends."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.domain.agent_session import AgentSession
from libs.readmodels.session_activity import LeaseActivity
from services.runtime.views import detail, row_of, summary

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _session() -> AgentSession:
    session, _ = AgentSession.create("ws", "worker", "coder", "m1", "anthropic", ["codegen"])
    return session


def test_a_session_holding_a_lease_runs_in_the_run_it_holds() -> None:
    session = _session()
    made = _ms(session.created_on)
    held = LeaseActivity(
        held_run_id="run-1",
        held_task_id="task-1",
        held_since=made + 1000,
        last_claimed_at=made + 1000,
        last_heartbeat_at=made + 5000,
    )

    view = detail(row_of(session), held, NOW)

    assert view.state == view.health.state == summary(row_of(session), held).state == "running"
    assert view.channel == "task_task-1" and view.activity.turn_id == "run-1"
    assert view.activity.last_activity_kind == "lease_heartbeat"
    assert view.health.last_presence_at == view.activity.last_progress_at == view.activity.last_activity_at
    assert view.health.active_prompt and not view.health.eligible_for_wake
    assert view.health.ineligibility_reason == "session_prompt_active"


def test_after_its_lease_ends_it_is_idle_and_a_lapsed_lease_is_no_sign_of_life() -> None:
    session = _session()
    made = _ms(session.created_on)
    ended = LeaseActivity(last_claimed_at=made + 1000, last_ended_at=made + 9000, last_ended_status="completed")
    lapsed = LeaseActivity(last_claimed_at=made + 1000, last_ended_at=made + 9000, last_ended_status="expired")

    done, gone = detail(row_of(session), ended, NOW), detail(row_of(session), lapsed, NOW)

    assert done.state == gone.state == "idle" and done.channel is None and done.activity.turn_id is None
    assert done.activity.last_activity_kind == "lease_completed" and done.health.eligible_for_wake
    assert _ms(done.health.last_presence_at) == made + 9000
    assert gone.activity.last_activity_kind == "lease_expired"
    assert _ms(gone.health.last_presence_at) == made + 1000, "its last claim, not the sweeper's expiry"
    assert gone.activity.last_progress_at is None


def test_a_stopped_session_is_stopped_whatever_it_held() -> None:
    session = _session()
    session.stop("stopped_by_user", "by a key holder")
    held = LeaseActivity(held_run_id="run-1", held_task_id="task-1", held_since=0, last_claimed_at=0)

    view = detail(row_of(session), held, NOW)

    assert view.state == summary(row_of(session), held).state == "stopped"
    assert view.health.ineligibility_reason == "session_stopped" and not view.health.active_prompt
