"""Review reads a workspace's settings from the log, not from a read model: a `reviewPolicy` or a
`questionExpirySeconds` counts from the moment it is saved. The read models exist here, empty,
and the projector runs only where a test says so. And a failed run's open questions expire."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import AskQuestionCommand, CommandReply
from contracts.events import EventEnvelope
from libs.domain.gate import Gate, QuestionGate, question_gate_id, review_gate_id
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.readmodels import projector
from services.review import handlers
from services.review.handlers import AUTO_APPROVED

pytestmark = pytest.mark.integration

WORKSPACE = "ws-review"
QUESTION = {"question": "Which greeting?", "options": [{"label": "Hello"}, {"label": "Hi"}]}


@pytest.fixture
def review(keeping_store: EventStore, read_models: None) -> EventStore:
    """Review's store, keeping aggregates as the service's does, over empty read models."""
    return keeping_store


def workspace_with(store: EventStore, config: dict[str, Any]) -> Workspace:
    workspace = Workspace.create(WORKSPACE, "review")
    workspace.update_config(config, config)
    store.save([workspace])
    return workspace


def delivered(event_type: str, aggregate_id: str, payload: dict[str, Any], seq: int = 1) -> EventEnvelope:
    """An event as review's consumer is handed it."""
    return EventEnvelope(
        seq=seq,
        type=event_type,
        workspace_id=WORKSPACE,
        aggregate_id=aggregate_id,
        version=5,
        occurred_at=0,
        payload=payload,
    )


def review_requested(task_id: str) -> EventEnvelope:
    return delivered("task.review_requested", task_id, {})


def open_gate(review: EventStore, task_id: str) -> Gate:
    review.save(handlers.on_events([review_requested(task_id)], review))
    gate = review.load_many([review_gate_id(task_id)])[review_gate_id(task_id)]
    assert isinstance(gate, Gate)
    return gate


def test_auto_approve_set_a_moment_ago_decides_the_gate(store: EventStore, review: EventStore) -> None:
    workspace_with(store, {"reviewPolicy": "auto_approve"})

    gate = open_gate(review, str(uuid.uuid4()))

    assert gate.decision == "approve"
    (decided,) = [e for e in review.read(0) if e.type == "gate.decided"]
    assert decided.payload["feedback"] == AUTO_APPROVED


def test_without_a_policy_the_gate_waits_for_a_person(store: EventStore, review: EventStore) -> None:
    workspace = workspace_with(store, {"reviewPolicy": "auto_approve"})
    workspace.update_config({"reviewPolicy": None}, {})
    store.save([workspace])

    gate = open_gate(review, str(uuid.uuid4()))

    assert gate.decision is None, "open, for a person to decide"


def test_a_question_expires_after_the_workspaces_setting(store: EventStore, review: EventStore) -> None:
    workspace_with(store, {"questionExpirySeconds": 120})
    command = AskQuestionCommand(
        WORKSPACE, f"que_{uuid.uuid4().hex}", "task-1", "run-1", [QUESTION], {"messageID": "m", "callID": "c"}
    )

    reply = handlers.ask(msgspec.json.encode(command), review, default_expiry_s=3600)

    assert isinstance(reply, CommandReply) and reply.error is None and reply.expires_at is not None
    assert abs(reply.expires_at / 1000 - (time.time() + 120)) < 5
    gate = review.load_many([question_gate_id(command.question_id)])[question_gate_id(command.question_id)]
    assert isinstance(gate, QuestionGate) and gate.expires_at == reply.expires_at


def run_failed(run_id: str) -> EventEnvelope:
    interrupted = {
        "task_id": "task-1",
        "subtask_id": "codegen",
        "agent_type": "codegen",
        "provider": "anthropic",
        "model": "claude",
        "error": "the run was interrupted (its executor stopped)",
        "usage": {},
        "retryable": True,
    }
    return delivered("run.failed", run_id, interrupted, seq=2)


def asked(review: EventStore, run_id: str) -> str:
    command = AskQuestionCommand(
        WORKSPACE, f"que_{uuid.uuid4().hex}", "task-1", run_id, [QUESTION], {"messageID": "m", "callID": "c"}
    )
    reply = handlers.ask(msgspec.json.encode(command), review, default_expiry_s=3600)
    assert reply.error is None
    return command.question_id


def question_status(review: EventStore, question_id: str) -> str:
    gate = review.load_many([question_gate_id(question_id)])[question_gate_id(question_id)]
    assert isinstance(gate, QuestionGate)
    return gate.status


def test_a_failed_runs_open_questions_expire_and_no_other(
    store: EventStore, review: EventStore, postgres_url: str
) -> None:
    workspace_with(store, {})
    interrupted, other = str(uuid.uuid4()), str(uuid.uuid4())
    waiting = asked(review, interrupted)
    answered = asked(review, interrupted)  # an earlier question of the same run, answered
    gate = review.load_many([question_gate_id(answered)])[question_gate_id(answered)]
    gate.answer([["Hello"]])
    review.save([gate])
    elsewhere = asked(review, other)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        projector.catch_up(store, conn)  # the questions were asked long before the run failed

    review.save(handlers.on_events([run_failed(interrupted)], review))

    assert question_status(review, waiting) == "expired", "nobody is waiting for its answer"
    assert question_status(review, answered) == "answered"
    assert question_status(review, elsewhere) == "open", "another run's question is still asked"
    expired = [e for e in review.read(0) if e.type == "question_gate.expired"]
    assert [e.payload["question_id"] for e in expired] == [waiting]


def test_a_question_whose_tool_call_is_not_named_in_full_is_refused_and_nothing_recorded(review: EventStore) -> None:
    # Its event would carry what no reader can type: the projector would stop on it, for everyone.
    command = AskQuestionCommand(WORKSPACE, f"que_{uuid.uuid4().hex}", "task-1", "run-1", [QUESTION], {"callID": "c"})
    head = review.head()

    reply = handlers.ask(msgspec.json.encode(command), review, default_expiry_s=3600)

    assert reply.error is not None and reply.error.status == 400
    assert "messageID" in reply.error.message
    assert review.head() == head
