"""Review handlers: gates open when a task asks for review; decisions are recorded once."""

from __future__ import annotations

import time
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import (
    AnswerQuestionCommand,
    AskQuestionCommand,
    CommandError,
    CommandReply,
    DecideReviewCommand,
)
from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.run import RunFailed
from contracts.payloads.task import TaskReviewRequested
from contracts.payloads.workspace import WorkspacePurged
from contracts.questions import QuestionItem, ToolRef, answer_problem
from contracts.tasks import Decision
from libs.domain.errors import GateClosed
from libs.domain.gate import Gate, QuestionGate, question_gate_id, review_gate_id
from libs.domain.workspace import Workspace, config_of, workspace_aggregate_id
from libs.eventstore.store import EventStore
from libs.readmodels import lookups

RESULTING_STATUS = {"approve": "approved", "reject": "failed", "revise": "failed"}

# The events review reacts to (its consumer's subjects): only these are decoded.
HANDLED = frozenset({"task.review_requested", "workspace.purged", "run.failed", "run.lease_expired"})


def on_events(envelopes: list[EventEnvelope], store: EventStore) -> list[Gate | QuestionGate | Workspace]:
    events = [typed(e) for e in envelopes if e.type in HANDLED]
    purged = _close_purged(events, store)
    # A question a purge in this batch closed is not expired a second time for its run.
    orphaned = _close_orphaned(events, store, closed={g.id for g in purged})
    return [*_open_reviews(events, store), *purged, *orphaned]


def _close_orphaned(events: list[Event[Any]], store: EventStore, closed: set[Any]) -> list[QuestionGate]:
    """A failed run's open questions expire: nobody waits for their answers any more.

    A run waits for its question's answer, so one that ends with a question still open was
    interrupted (its executor stopped while it waited) or failed while waiting; the next
    attempt asks again if it needs to. Without this the question stayed in the queue until it
    expired, and a person could answer it for no one. Found through the read models: an
    interrupted run asked it at least ACK_WAIT_S before, long since projected; one the
    projector has not reached (stopped, rebuilding) is not found, and expires in its time."""
    runs = [e.aggregate_id for e in events if isinstance(e.payload, RunFailed)]
    if not runs:
        return []
    ids = [i for q in lookups.open_questions_of(store, runs) if (i := question_gate_id(q)) not in closed]
    gates = [g for g in store.load_many(ids).values() if isinstance(g, QuestionGate) and g.status == "open"]
    for gate in gates:
        gate.expire()
    return gates


def _close_purged(events: list[Event[Any]], store: EventStore) -> list[QuestionGate]:
    """A purged workspace's open questions expire: the runs waiting on them are told."""
    purges = [e.payload for e in events if isinstance(e.payload, WorkspacePurged)]
    ids = [question_gate_id(q) for p in purges for q in p.closed_questions]
    gates = [g for g in store.load_many(ids).values() if isinstance(g, QuestionGate) and g.status == "open"]
    for gate in gates:
        gate.expire()
    return gates


AUTO_APPROVED = "approved automatically: the workspace's reviewPolicy is auto_approve"


def _open_reviews(events: list[Event[Any]], store: EventStore) -> list[Gate | Workspace]:
    """Opens the gates asked for; in a workspace whose `reviewPolicy` is `auto_approve` (read
    from the log, with the gates) decides them too. The workspaces go back with the gates, to be
    kept (they append nothing: the gateway owns them)."""
    requested = [e for e in events if isinstance(e.payload, TaskReviewRequested)]
    if not requested:
        return []
    workspaces = {workspace_aggregate_id(e.workspace_id) for e in requested}
    loaded = store.load_many([*(review_gate_id(e.aggregate_id) for e in requested), *workspaces])
    opened: dict[str, Gate] = {}
    for e in requested:
        if review_gate_id(e.aggregate_id) not in loaded and e.aggregate_id not in opened:
            gate = opened[e.aggregate_id] = Gate.open_review(e.workspace_id, e.aggregate_id)
            if config_of(loaded, e.workspace_id).get("reviewPolicy") == "auto_approve":
                # The workspace asked for no human gate: the decision is recorded all the same.
                gate.decide("approve", AUTO_APPROVED)
    return [*opened.values(), *(w for i, w in loaded.items() if i in workspaces)]


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
    gate = store.load(review_gate_id(command.task_id))
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


# --- agents' questions -------------------------------------------------------------------------


def ask(raw: bytes, store: EventStore, default_expiry_s: int) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=AskQuestionCommand)
        # The owner types what its event will carry (one a reader could not type would stop the
        # projector for every workspace).
        questions = msgspec.convert(command.questions, list[QuestionItem])
        tool = msgspec.convert(command.tool, ToolRef)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    loaded = store.load_many([workspace_aggregate_id(command.workspace_id)])
    expiry = config_of(loaded, command.workspace_id).get("questionExpirySeconds")
    expiry_s = int(expiry) if expiry else default_expiry_s
    gate = QuestionGate.ask(
        command.workspace_id,
        command.question_id,
        command.task_id,
        command.run_id,
        questions,
        tool,
        int(time.time() * 1000) + expiry_s * 1000,
        command.subtask_id,
        command.agent_type,
    )
    try:
        seq = store.save([gate, *loaded.values()])  # the workspace appends nothing: it is kept
    except IntegrityError:
        return CommandReply(error=CommandError(409, "question_exists", f"question {command.question_id} exists"))
    return CommandReply(seq=seq, status="open", expires_at=gate.expires_at)


def answer(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=AnswerQuestionCommand)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    gate_id = question_gate_id(command.question_id)
    gate = store.load(gate_id)
    if not isinstance(gate, QuestionGate) or gate.workspace_id != command.workspace_id or gate.status != "open":
        # Answered, expired, or not this workspace's: as the spec says, not found.
        return CommandReply(error=CommandError(404, "Not found", f"question {command.question_id} not found"))
    problem = answer_problem(gate.questions, command.answers)
    if problem:
        return CommandReply(error=CommandError(400, "invalid_answer", problem))
    try:
        gate.answer(command.answers)
        seq = store.save([gate])
    except (GateClosed, IntegrityError):
        # Expired (or answered elsewhere) this very moment.
        return CommandReply(error=CommandError(404, "Not found", f"question {command.question_id} not found"))
    return CommandReply(seq=seq, status="answered")


def expire_overdue(store: EventStore) -> int:
    """Expires every open question past its time; how many it expired."""
    now = int(time.time() * 1000)
    due = lookups.overdue_questions(store, now)
    gates = store.load_many([question_gate_id(q) for q in due])
    expired = [g for g in gates.values() if isinstance(g, QuestionGate) and g.status == "open"]
    for gate in expired:
        gate.expire()
    if expired:
        try:
            store.save(expired)
        except IntegrityError:
            return 0  # answered (or expired by another replica) meanwhile: the next round sees it
    return len(expired)
