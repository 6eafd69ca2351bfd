"""Review handlers: gates open when a task asks for review; decisions are recorded once."""

from __future__ import annotations

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, DecideReviewCommand
from contracts.events import EventEnvelope
from contracts.tasks import Decision
from libs.domain.errors import GateClosed
from libs.domain.gate import Gate, review_gate_id
from libs.eventstore.store import EventStore

RESULTING_STATUS = {"approve": "approved", "reject": "failed", "revise": "failed"}


def on_events(events: list[EventEnvelope], store: EventStore) -> list[Gate]:
    requested = [e for e in events if e.type == "task.review_requested"]
    existing = store.load_many(review_gate_id(e.aggregate_id) for e in requested)
    opened: dict[str, Gate] = {}
    for e in requested:
        if review_gate_id(e.aggregate_id) not in existing and e.aggregate_id not in opened:
            opened[e.aggregate_id] = Gate.open_review(e.workspace_id, e.aggregate_id)
    return list(opened.values())


def decide(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=DecideReviewCommand)
        decision = Decision(command.decision)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    if decision in (Decision.REJECT, Decision.REVISE) and not (command.feedback or "").strip():
        return CommandReply(error=CommandError(400, "feedback_required", f"'{decision}' needs feedback"))
    try:
        return _decide(command, decision, store)
    except IntegrityError:
        # The gate was opened by this service's consumer at the same moment: decide on it.
        return _decide(command, decision, store)


def _decide(command: DecideReviewCommand, decision: Decision, store: EventStore) -> CommandReply:
    gate = store.load_many([review_gate_id(command.task_id)]).get(review_gate_id(command.task_id))
    if gate is not None and gate.workspace_id != command.workspace_id:
        return CommandReply(error=CommandError(404, "Not found", f"task {command.task_id} not found"))
    if gate is None:
        # The decision can arrive before this service has seen the task's review request
        # (the gateway checked the task is in review): open the gate now, in the same write.
        gate = Gate.open_review(command.workspace_id, command.task_id)
    try:
        gate.decide(decision.value, command.feedback)
    except GateClosed as exc:
        return CommandReply(error=CommandError(400, "invalid_state_transition", str(exc)))
    seq = store.save([gate])
    return CommandReply(seq=seq, status=RESULTING_STATUS[decision.value])
