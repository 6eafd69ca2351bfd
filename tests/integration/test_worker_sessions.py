"""The runtime's sessions for container workers, made and stopped on the executor's command: a
root session that may claim its run's agent type and nothing more, with a TTL, its token in the
reply only; stopping it twice is harmless, and another workspace's session is not found."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from contracts.commands import CloseWorkerSession, OpenWorkerSession
from libs.domain.agent_session import STOPPED, AgentSession, split_token
from libs.eventstore.store import EventStore
from libs.leases.clock import now_ms
from services.runtime.worker_sessions import close_worker_session, open_worker_session

pytestmark = pytest.mark.integration

WS = "ws-worker-sessions"


def opened(store: EventStore, ttl_s: int = 3600) -> tuple[AgentSession, str]:
    command = OpenWorkerSession(
        workspace_id=WS,
        run_id=str(uuid.uuid4()),
        name="fly-1234abcd",
        agent_type="codegen",
        provider="anthropic",
        model="claude-sonnet-4-5",
        ttl_s=ttl_s,
    )
    reply = open_worker_session(msgspec.json.encode(command), store)
    assert reply.error is None and reply.session_id and reply.token
    session = store.load(uuid.UUID(reply.session_id))
    assert isinstance(session, AgentSession)
    return session, reply.token


def test_a_workers_session_holds_its_token_and_may_do_nothing_but_claim(store: EventStore) -> None:
    before = now_ms()
    session, token = opened(store)

    parsed = split_token(token)
    assert parsed is not None and parsed[0] == session.id and session.holds(parsed[1])
    details = session.details
    assert details.capabilities == ["codegen"] and details.agent_name == "codegen"
    assert details.spawn_budget.max_children == 0, "a worker spawns no helpers"
    assert not any(msgspec.structs.asdict(details.permissions).values()), "and has no permissions"
    assert details.ttl_expires_at is not None and before + 3_600_000 <= details.ttl_expires_at <= now_ms() + 3_600_000
    assert token not in msgspec.json.encode(details).decode(), "the event keeps the token's hash only"


def test_closing_a_workers_session_stops_it_once(store: EventStore) -> None:
    session, _ = opened(store)
    close = CloseWorkerSession(workspace_id=WS, session_id=str(session.id), detail="its machine was destroyed")

    first = close_worker_session(msgspec.json.encode(close), store)
    again = close_worker_session(msgspec.json.encode(close), store)

    assert first.error is None and first.seq > 0
    assert again.error is None and again.seq == 0, "stopped already: nothing appended"
    stopped = store.load(session.id)
    assert isinstance(stopped, AgentSession) and stopped.state == STOPPED
    assert stopped.stopped is not None and stopped.stopped.detail == "its machine was destroyed"
    elsewhere = msgspec.structs.replace(close, workspace_id="another-workspace")
    refused = close_worker_session(msgspec.json.encode(elsewhere), store)
    assert refused.error is not None and refused.error.status == 404
