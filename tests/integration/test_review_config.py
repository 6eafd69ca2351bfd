"""Review reads a workspace's settings from the log, not from a read model: a `reviewPolicy` or a
`questionExpirySeconds` counts from the moment it is saved. The read models exist here, empty,
and the projector never runs."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec
import pytest

from contracts.commands import AskQuestionCommand, CommandReply
from contracts.events import EventEnvelope
from libs.domain.gate import Gate, QuestionGate, question_gate_id, review_gate_id
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
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


def review_requested(task_id: str) -> EventEnvelope:
    return EventEnvelope(
        seq=1,
        type="task.review_requested",
        workspace_id=WORKSPACE,
        aggregate_id=task_id,
        version=5,
        occurred_at=0,
        payload={},
    )


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
    command = AskQuestionCommand(WORKSPACE, f"que_{uuid.uuid4().hex}", "task-1", "run-1", [QUESTION], {"callID": "c"})

    reply = handlers.ask(msgspec.json.encode(command), review, default_expiry_s=3600)

    assert isinstance(reply, CommandReply) and reply.error is None and reply.expires_at is not None
    assert abs(reply.expires_at / 1000 - (time.time() + 120)) < 5
    gate = review.load_many([question_gate_id(command.question_id)])[question_gate_id(command.question_id)]
    assert isinstance(gate, QuestionGate) and gate.expires_at == reply.expires_at
