"""Spec 003's steering of a task by its client: stop (`cmd.planner.stop-task`) and retry
(`cmd.planner.retry-task`), answered by the owner of Tasks from the event store, which is
always current (the gateway's read models may lag a step behind).

A stop cancels the task (`task.cancelled`); its waiting children are cancelled with it, in the
same write. The executors hear the cancellation and stop its runs (`services/executor/purges.py`).

A retry starts a new execution linked to the old one, as a revision does: the old task records
`task.retried` with the new task's id, derived from its own (so a retry sent twice, or by two
replicas at once, makes one task), and the new task's `task.submitted` carries `retry_of`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, RetryTaskCommand, StopTaskCommand
from libs.domain.base import derived_id
from libs.domain.errors import IllegalTransition
from libs.domain.task import APPROVED, CANCELLED, COMPLETED, FAILED, TERMINAL, Task
from libs.eventstore.store import EventStore
from services.planner.handlers import Batch, follow_parent, new_task, settle_children
from services.planner.slots import Slots

ATTEMPTS = 8
STOPPED = "stopped on request"
# How far a retried chained task follows its parent's retries to find the one to wait for.
MAX_PARENT_RETRIES = 50


def stop_task(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=StopTaskCommand)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    return _again_on_conflict(lambda: _stop(command.workspace_id, command.task_id, store))


def retry_task(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=RetryTaskCommand)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    return _again_on_conflict(lambda: _retry(command.workspace_id, command.task_id, store))


def _again_on_conflict(act: Callable[[], CommandReply]) -> CommandReply:
    for attempt in range(ATTEMPTS):
        try:
            return act()
        except IntegrityError:
            # The task (or its parent, or a child) changed meanwhile, as its runs end: again on
            # fresh state, after a short random pause.
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
    return CommandReply(error=CommandError(503, "service_unavailable", "the task is changing too fast; try again"))


def _loaded(workspace_id: str, task_id: str, store: EventStore) -> tuple[Batch, Slots, Task] | CommandError:
    """The task with its workspace's slots, in one read; a 404 for an id that is not one of the
    workspace's tasks (another workspace's is as unknown as one that does not exist)."""
    wanted = _uuid(task_id)
    slots = Slots(store)
    batch = Batch(store, [wanted] if wanted is not None else [], slots, [workspace_id])
    task = batch.tasks.get(wanted) if wanted is not None else None
    if not isinstance(task, Task) or task.workspace_id != workspace_id:
        return CommandError(404, "Not found", f"task {task_id} not found")
    return batch, slots, task


def _stop(workspace_id: str, task_id: str, store: EventStore) -> CommandReply:
    loaded = _loaded(workspace_id, task_id, store)
    if isinstance(loaded, CommandError):
        return CommandReply(error=loaded)
    batch, slots, task = loaded
    try:
        task.stop(STOPPED)
    except IllegalTransition:
        rule = "its pull request is being opened" if task.status == APPROVED else "it has finished"
        return CommandReply(error=_not_now(task, "stopped", rule))
    settle_children(batch, store, [task], slots.gate)
    seq = store.save([*batch.to_save(), *slots.to_save()])
    return CommandReply(seq=seq, task_ids=[str(task.id)], status=task.status)


def _retry(workspace_id: str, task_id: str, store: EventStore) -> CommandReply:
    loaded = _loaded(workspace_id, task_id, store)
    if isinstance(loaded, CommandError):
        return CommandReply(error=loaded)
    batch, slots, task = loaded
    if task.retried_by is not None:
        return CommandReply(task_ids=[task.retried_by], status="existing")
    if task.status not in (FAILED, CANCELLED):
        return CommandReply(error=_not_now(task, "retried", "only a failed or cancelled task can be"))
    request = task.rerun_request()
    parent: Task | None = None
    if request.get("parentTaskId"):
        found = _parent_to_wait_for(task, store)
        if isinstance(found, CommandError):
            return CommandReply(error=found)
        parent = found
        request["parentTaskId"] = str(parent.id)
    retry_id = derived_id("retry", task.id)
    try:
        task.retry(retry_id)
    except IllegalTransition as exc:  # it was revised: its revision goes on with its work
        return CommandReply(error=CommandError(409, "invalid_state_transition", str(exc)))
    retried = new_task(workspace_id, request, retry_id, slots.gate, retry_of=str(task.id))
    if parent is not None:
        follow_parent(retried, parent, slots.gate)
    seq = store.save([*batch.to_save(), retried, *([parent] if parent else []), *slots.to_save()])
    return CommandReply(seq=seq, task_ids=[str(retry_id)], status="created")


def _parent_to_wait_for(task: Task, store: EventStore) -> Task | CommandError:
    """A chained task that ended before its parent completed waits, once retried, for its parent
    or the parent's latest retry: the one that can still complete."""
    parent = store.load(UUID(str(task.parent_task_id)))
    for _ in range(MAX_PARENT_RETRIES):
        if not isinstance(parent, Task) or parent.retried_by is None:
            break
        parent = store.load(UUID(parent.retried_by))
    if not isinstance(parent, Task):
        return CommandError(409, "invalid_state_transition", f"task {task.id}'s parent task cannot be found")
    if parent.status in TERMINAL and parent.status != COMPLETED:
        message = (
            f"task {task.id} waits for its parent task {parent.id}, which is {parent.status}: "
            "retry the parent first, and this task then waits for the parent's retry"
        )
        return CommandError(409, "invalid_state_transition", message)
    return parent


def _not_now(task: Task, done: str, rule: str) -> CommandError:
    return CommandError(
        409, "invalid_state_transition", f"task {task.id} is '{task.status}': it cannot be {done} ({rule})"
    )


def _uuid(text: str) -> UUID | None:
    try:
        value = UUID(text)
    except ValueError:
        return None
    return value if str(value) == text else None
