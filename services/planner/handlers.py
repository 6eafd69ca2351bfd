"""Planner handlers: plain functions from a command or a batch of events to changed Tasks."""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

import msgspec

from contracts.commands import CommandError, CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.tasks import TaskRequest
from libs.domain.base import derived_id
from libs.domain.errors import DomainError
from libs.domain.task import Task
from libs.eventstore.store import EventStore
from services.planner.plans import plan

log = logging.getLogger(__name__)


def new_task(workspace_id: str, request: dict[str, Any], task_id: UUID, revision_of: str | None = None) -> Task:
    subtasks = plan(str(task_id), request["agentType"], request["description"])
    task = Task.submit(task_id, workspace_id, request, subtasks, revision_of=revision_of)
    for subtask in task.ready_subtasks():
        task.dispatch(subtask)
    return task


def submit_tasks(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=SubmitTasksCommand)
        # The gateway validated already; the owner checks again because it is the owner.
        requests = [msgspec.to_builtins(msgspec.convert(t, TaskRequest)) for t in command.tasks]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    tasks = [new_task(command.workspace_id, r, uuid.uuid4()) for r in requests]
    seq = store.save(tasks)
    return CommandReply(seq=seq, task_ids=[str(t.id) for t in tasks])


class Batch:
    """The Tasks one batch of events touches, loaded in one query and saved together."""

    def __init__(self, store: EventStore, task_ids: list[UUID]) -> None:
        self.tasks: dict[UUID, Task] = store.load_many(task_ids)
        self.created: list[Task] = []

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(UUID(task_id))

    def changed(self) -> list[Task]:
        return [t for t in self.tasks.values() if t.pending_events] + self.created


def _task_id(event: EventEnvelope) -> str:
    return event.payload["task_id"]


def on_events(events: list[EventEnvelope], store: EventStore) -> list[Task]:
    batch = Batch(store, [UUID(_task_id(e)) for e in events if "task_id" in e.payload])
    for event in events:
        task = batch.get(_task_id(event)) if "task_id" in event.payload else None
        if task is None:
            log.warning("%s %s refers to an unknown task", event.type, event.seq)
            continue
        reaction = REACTIONS.get(event.type)
        if reaction is None:
            continue
        try:
            reaction(task, event, batch)
        except DomainError as exc:
            # The state machine refused: the event is stale (e.g. a result for a cancelled task).
            log.info("ignored %s (seq %d) for task %s: %s", event.type, event.seq, task.id, exc)
    return batch.changed()


def _run_started(task: Task, event: EventEnvelope, batch: Batch) -> None:
    task.start()


def _run_succeeded(task: Task, event: EventEnvelope, batch: Batch) -> None:
    p = event.payload
    subtask = task.subtask(p["subtask_id"])
    result = {
        "subtaskId": p["subtask_id"],
        "agentType": subtask["agentType"],
        "success": True,
        "output": p["output"],
        "durationMs": p["duration_ms"],
    }
    task.record_success(p["subtask_id"], event.aggregate_id, result)
    for ready in task.ready_subtasks():
        task.dispatch(ready)
    if task.status == "running" and task.all_succeeded():
        task.request_review()


def _run_failed(task: Task, event: EventEnvelope, batch: Batch) -> None:
    task.record_failure(event.payload["subtask_id"], event.aggregate_id, event.payload["error"])


def _gate_decided(task: Task, event: EventEnvelope, batch: Batch) -> None:
    decision, feedback = event.payload["decision"], event.payload.get("feedback")
    if decision == "approve":
        task.approve(feedback)
    elif decision == "reject":
        task.reject(feedback)
    elif decision == "revise":
        revision_id = derived_id("revision", task.id)
        task.revise(feedback or "", revision_id)
        request = dict(task.request)
        request["description"] = f"{request['description']}\n\nRevision feedback: {feedback}"
        batch.created.append(new_task(task.workspace_id, request, revision_id, revision_of=str(task.id)))


def _pull_request(task: Task, event: EventEnvelope, batch: Batch) -> None:
    if event.type == "pull_request.opened":
        task.complete(event.payload["url"], None)
    else:
        task.complete(None, f"no pull request opened: {event.payload['reason']}")


REACTIONS = {
    "run.started": _run_started,
    "run.succeeded": _run_succeeded,
    "run.failed": _run_failed,
    "gate.decided": _gate_decided,
    "pull_request.opened": _pull_request,
    "pull_request.skipped": _pull_request,
}
