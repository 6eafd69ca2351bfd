"""Planner handlers: plain functions from a command or a batch of events to changed Tasks."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, SubmitTasksCommand
from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.gate import GateDecided
from contracts.payloads.input_gate import InputGateAnswered
from contracts.payloads.pull_request import PullRequestFailed, PullRequestOpened, PullRequestSkipped
from contracts.payloads.run import RunBudgetStopped, RunFailed, RunLeaseExpired, RunReleased, RunStarted, RunSucceeded
from contracts.payloads.shapes import SubtaskResult
from contracts.payloads.task import TaskPlanRequested
from contracts.payloads.workspace import WorkspaceConfigUpdated, WorkspacePurged
from contracts.tasks import TaskRequest
from libs.domain.base import derived_id
from libs.domain.errors import DomainError
from libs.domain.orchestration_run import PURGED, OrchestrationRun
from libs.domain.task import COMPLETED, TERMINAL, DispatchGate, Task, keyed_task_id
from libs.eventstore.blobs import Blob, stored
from libs.eventstore.store import EventStore
from libs.llm.providers import Providers
from libs.readmodels import lookups
from services.planner import orchestrating
from services.planner.drafting import Draft, draft
from services.planner.plans import plan
from services.planner.slots import Slots, aggregate_ids

log = logging.getLogger(__name__)

SUBMIT_ATTEMPTS = 8

PullRequestEvent = PullRequestOpened | PullRequestSkipped | PullRequestFailed
RunEnd = RunSucceeded | RunFailed | RunBudgetStopped | RunReleased  # RunLeaseExpired is a RunFailed
# A run's, a gate's or a pull request's event: about one task, which its payload names.
AboutATask = RunStarted | RunEnd | GateDecided | PullRequestEvent | InputGateAnswered


def new_task(
    workspace_id: str,
    request: dict[str, Any],
    task_id: UUID,
    dispatch_gate: DispatchGate,
    revision_of: str | None = None,
    retry_of: str | None = None,
) -> Task:
    if request["config"].get("planner") == "llm":
        # The model drafts the plan (see on_plan_requests); the task waits for it.
        task = Task.submit(task_id, workspace_id, request, [], revision_of=revision_of, retry_of=retry_of)
        task.request_plan()
        return task
    subtasks = plan(str(task_id), request["agentType"], request["description"])
    task = Task.submit(task_id, workspace_id, request, subtasks, revision_of=revision_of, retry_of=retry_of)
    task.dispatch_ready(dispatch_gate)
    return task


def submit_tasks(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=SubmitTasksCommand)
        # The gateway validated already; the owner checks again because it is the owner.
        requests = [msgspec.to_builtins(msgspec.convert(t, TaskRequest)) for t in command.tasks]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    for attempt in range(SUBMIT_ATTEMPTS):
        try:
            return _submit(command.workspace_id, requests, store, command.idempotency_key)
        except IntegrityError:
            # A parent task changed while children were linked to it (other submissions, or
            # the parent moving on): again on fresh state, after a short random pause.
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))
    return CommandReply(
        error=CommandError(503, "service_unavailable", "the parent task is changing too fast; try again")
    )


def _submit(workspace_id: str, requests: list[dict[str, Any]], store: EventStore, key: str | None) -> CommandReply:
    if key is None:
        task_ids = [uuid.uuid4() for _ in requests]
    else:
        task_ids = [keyed_task_id(workspace_id, key, index) for index in range(len(requests))]
        if store.load_many(task_ids):
            return CommandReply(task_ids=[str(t) for t in task_ids], status="existing")
    wanted = {r["parentTaskId"] for r in requests if r.get("parentTaskId")}
    ids = {w: _uuid(w) for w in wanted}
    # The parents, the workspace (its cap) and its schedule, in one read.
    loaded = store.load_many([*(i for i in ids.values() if i is not None), *aggregate_ids([workspace_id])])
    slots = Slots(store)
    slots.adopt(loaded, [workspace_id])
    parents = _parents(workspace_id, ids, loaded)
    if isinstance(parents, CommandError):
        return CommandReply(error=parents)
    blobs: list[Blob] = []
    tasks = [
        new_task(workspace_id, _by_digest(workspace_id, r, blobs), task_id, slots.gate)
        for r, task_id in zip(requests, task_ids, strict=True)
    ]
    for task in tasks:
        if task.parent_task_id is not None:
            follow_parent(task, parents[task.parent_task_id], slots.gate)
    seq = store.save([*tasks, *parents.values(), *slots.to_save()], blobs=blobs)
    return CommandReply(seq=seq, task_ids=[str(t.id) for t in tasks])


def _by_digest(workspace_id: str, request: dict[str, Any], blobs: list[Blob]) -> dict[str, Any]:
    """The request as the task records it: its repository's files by digest, their contents
    added to `blobs`, stored once with the task's first event (and never copied into an event)."""
    files, new = stored(workspace_id, request["repo"]["files"])
    blobs.extend(new)
    return {**request, "repo": {**request["repo"], "files": files}}


def _parents(workspace_id: str, ids: dict[str, UUID | None], loaded: dict[UUID, Any]) -> dict[str, Task] | CommandError:
    """The parent tasks the requests chain to (`ids`: each `parentTaskId` given, as a UUID when
    it is one), from what was `loaded`; an error naming the first that is not known here."""
    parents: dict[str, Task] = {}
    for given, task_id in sorted(ids.items()):
        parent = loaded.get(task_id) if task_id is not None else None
        # Another workspace's task is as unknown here as one that does not exist.
        if not isinstance(parent, Task) or parent.workspace_id != workspace_id:
            return CommandError(400, "unknown_parent_task", f"parentTaskId '{given}' is not a known task")
        parents[given] = parent
    return parents


def follow_parent(child: Task, parent: Task, dispatch_gate: DispatchGate) -> None:
    """Link the child to its parent, or settle it at once when the parent has already ended."""
    if parent.status == COMPLETED:
        child.start_after_parent(parent, dispatch_gate)
    elif parent.status in TERMINAL:
        child.cancel(parent_ended(parent))
    else:
        parent.link_child(str(child.id))


def parent_ended(parent: Task) -> str:
    detail = f": {parent.error}" if parent.error else ""
    return f"parent task {parent.id} {parent.status}{detail}"


def _uuid(text: str) -> UUID | None:
    try:
        value = UUID(text)
    except ValueError:
        return None
    return value if str(value) == text.lower() else None


class Batch:
    """The Tasks one batch of events touches, loaded in one query with their workspaces (for
    `slots`), and saved together."""

    def __init__(self, store: EventStore, task_ids: list[UUID], slots: Slots, workspace_ids: list[str]) -> None:
        loaded = store.load_many([*task_ids, *aggregate_ids(workspace_ids)])
        slots.adopt(loaded, workspace_ids)
        # A Run's `task_id` names an orchestration run when the Run is one of its agent steps.
        self.orchestrations = {i: a for i, a in loaded.items() if isinstance(a, OrchestrationRun)}
        self.tasks: dict[UUID, Task] = {i: a for i, a in loaded.items() if i not in self.orchestrations}
        self.created: list[Task] = []

    def get(self, task_id: str) -> Task | None:
        return self.tasks.get(UUID(task_id))

    def to_save(self) -> list[Task]:
        """Every task of the batch: the changed ones append their events, and each goes back to
        the store's kept aggregates (one loaded and not saved would be rebuilt from all its
        events next time)."""
        return [*self.tasks.values(), *self.created, *self.orchestrations.values()]


def on_events(events: list[EventEnvelope], store: EventStore) -> list[Any]:
    # Only the events reacted to are decoded: the consumer hands over envelopes.
    decoded = [typed(e) for e in events if e.type in REACTED]
    stopped = [UUID(t) for e in decoded if isinstance(e.payload, WorkspacePurged) for t in e.payload.stopped_tasks]
    slots = Slots(store)
    task_ids = [UUID(e.payload.task_id) for e in decoded if isinstance(e.payload, AboutATask)] + stopped
    batch = Batch(store, task_ids, slots, [e.workspace_id for e in decoded])
    before = {task_id: task.status for task_id, task in batch.tasks.items()}
    for event in decoded:
        _react(event, batch, store, slots)
    ended = [t for i, t in batch.tasks.items() if t.status != before.get(i) and t.status in TERMINAL]
    settle_children(batch, store, ended, slots.gate)
    # Slots freed by runs that ended (or a cap raised) go to the subtasks waiting, in order.
    slots.start_waiting(batch.tasks)
    return [*batch.to_save(), *slots.to_save()]


def _react(event: Event[Any], batch: Batch, store: EventStore, slots: Slots) -> None:
    p = event.payload
    if isinstance(p, WorkspacePurged):
        _stop_purged(event, batch)
        return
    if isinstance(p, WorkspaceConfigUpdated):
        # A cap raised or lifted frees slots: `start_waiting` looks at the schedule at the end.
        _resume_paused(event, batch, store, slots.gate)
        return
    task = batch.get(p.task_id) if isinstance(p, AboutATask) else None
    orchestration_run = (
        batch.orchestrations.get(UUID(p.task_id)) if task is None and isinstance(p, AboutATask) else None
    )
    if orchestration_run is not None:
        # Only how its step's Run ends, or a person's answer at its gate, moves it on.
        if isinstance(p, RunEnd):
            orchestrating.on_run_end(orchestration_run, event, store)
        elif isinstance(p, InputGateAnswered):
            orchestrating.on_answer(orchestration_run, event, store)
        return
    if task is None:
        log.warning("%s %s refers to an unknown task", event.type, event.seq)
        return
    if isinstance(p, RunEnd):
        slots.finished(task, p.subtask_id)  # before a retry asks for a slot again
    reaction = REACTIONS.get(event.type)
    if reaction is None:
        return
    try:
        reaction(task, event, batch, slots.gate)
    except DomainError as exc:
        # The state machine refused: the event is stale (e.g. a result for a cancelled task).
        log.info("ignored %s (seq %d) for task %s: %s", event.type, event.seq, task.id, exc)


LOG_PAGE = 1000
BUDGET_KEYS = frozenset({"budgetUsd", "taskBudgetUsd", "onBudgetExceeded"})


def _resume_paused(
    event: Event[WorkspaceConfigUpdated], batch: Batch, store: EventStore, dispatch_gate: DispatchGate
) -> None:
    """A budget setting changed (a cap raised, say): the workspace's paused tasks go on. One
    whose cap still does not allow the next call pauses again, before spending anything."""
    if not BUDGET_KEYS & set(event.payload.changes):
        return
    paused, projected = lookups.paused_tasks(store, event.workspace_id)
    # Paused after the projector's position (it lags a little, or is stopped), a task is only in
    # the log: what the log holds past that seq is read too. Each candidate's own state decides.
    candidates = {*paused, *_paused_since(store, projected, event.workspace_id)}
    found = store.load_many([p for p in candidates if p not in batch.tasks])
    batch.tasks.update({task_id: task for task_id, task in found.items() if task.status == "paused"})
    # Paused in this very batch, neither can know them yet.
    for task in list(batch.tasks.values()):
        if task.workspace_id == event.workspace_id and task.status == "paused":
            task.resume(dispatch_gate)


def _paused_since(store: EventStore, after: int, workspace_id: str) -> set[UUID]:
    paused: set[UUID] = set()
    while events := store.read_of(Task.Paused, after, LOG_PAGE):
        paused.update(UUID(e.aggregate_id) for e in events if e.workspace_id == workspace_id)
        if len(events) < LOG_PAGE:
            break
        after = events[-1].seq
    return paused


def _stop_purged(event: Event[WorkspacePurged], batch: Batch) -> None:
    """A purged workspace's unfinished tasks stop: their later results change nothing. Its
    orchestration runs still going fail (spec 004 has no cancelled run), so neither a step's Run
    ending nor a resume takes one further."""
    for task_id in event.payload.stopped_tasks:
        task = batch.get(task_id)
        if task is not None and task.workspace_id == event.workspace_id and task.status not in TERMINAL:
            task.cancel("the workspace was purged")
        run = batch.orchestrations.get(UUID(task_id))
        if run is not None and run.workspace_id == event.workspace_id and not run.settled:
            run.fail(PURGED, *run.step_spent)


def settle_children(batch: Batch, store: EventStore, ended: list[Task], dispatch_gate: DispatchGate) -> None:
    """Children of tasks that just ended start (the parent completed) or are cancelled (it did
    not); a cancelled child's own children follow, in the same batch."""
    while ended:
        waiting = [UUID(c) for t in ended for c in t.children if UUID(c) not in batch.tasks]
        batch.tasks.update(store.load_many(waiting))
        next_ended: list[Task] = []
        for parent in ended:
            for child_id in parent.children:
                child = batch.tasks.get(UUID(child_id))
                if child is None or not child.waiting_for_parent or child.status in TERMINAL:
                    continue
                if parent.status == COMPLETED:
                    child.start_after_parent(parent, dispatch_gate)
                else:
                    child.cancel(parent_ended(parent))
                    next_ended.append(child)
        ended = next_ended


def _run_started(task: Task, event: Event[RunStarted], batch: Batch, dispatch_gate: DispatchGate) -> None:
    task.start()


def _run_succeeded(task: Task, event: Event[RunSucceeded], batch: Batch, dispatch_gate: DispatchGate) -> None:
    p = event.payload
    subtask = task.subtask(p.subtask_id)
    result = SubtaskResult(
        subtask_id=p.subtask_id,
        agent_type=subtask.agent_type,
        success=True,
        output=p.output,
        duration_ms=p.duration_ms,
        attempts=p.attempt,
    )
    task.record_success(p.subtask_id, event.aggregate_id, result)
    if task.status == "paused":
        return  # what became ready runs when the task resumes
    task.dispatch_ready(dispatch_gate)
    if task.status == "running" and task.all_succeeded():
        task.request_review()


def _run_failed(task: Task, event: Event[RunFailed], batch: Batch, dispatch_gate: DispatchGate) -> None:
    p = event.payload
    expired = isinstance(p, RunLeaseExpired)
    run_id = event.aggregate_id
    task.attempt_failed(p.subtask_id, run_id, p.attempt, p.error, p.retryable, p.output, dispatch_gate, expired)


def _run_released(task: Task, event: Event[RunReleased], batch: Batch, dispatch_gate: DispatchGate) -> None:
    task.run_released(event.payload.subtask_id, event.aggregate_id, dispatch_gate)


def _budget_stopped(task: Task, event: Event[RunBudgetStopped], batch: Batch, dispatch_gate: DispatchGate) -> None:
    p = event.payload
    cap = p.cap
    if p.on_exceeded == "fail":
        reason = (
            f"stopped by the {cap.cap} budget cap: ${cap.spent_usd:.4f} spent of ${cap.limit_usd:.4f}, "
            f"and the next model call could cost ${cap.estimate_usd:.4f}"
        )
        # Not retryable, so it dispatches nothing; it gets the gate all the same, as every command that can.
        task.attempt_failed(p.subtask_id, event.aggregate_id, p.attempt, reason, False, p.output, dispatch_gate)
    else:
        task.pause(p.subtask_id, event.aggregate_id, p.attempt, cap, p.output)


def _gate_decided(task: Task, event: Event[GateDecided], batch: Batch, dispatch_gate: DispatchGate) -> None:
    decision, feedback = event.payload.decision, event.payload.feedback
    if decision == "approve":
        task.approve(feedback)
    elif decision == "reject":
        task.reject(feedback)
    elif decision == "revise":
        revision_id = derived_id("revision", task.id)
        task.revise(feedback or "", revision_id)
        # A chained task's parent has completed by now: the revision starts where the task
        # started, with the parent's changes already in its files, and waits for nothing.
        request = task.rerun_request()
        request["description"] = f"{request['description']}\n\nRevision feedback: {feedback}"
        batch.created.append(new_task(task.workspace_id, request, revision_id, dispatch_gate, revision_of=str(task.id)))


def _pull_request(task: Task, event: Event[PullRequestEvent], batch: Batch, dispatch_gate: DispatchGate) -> None:
    p = event.payload
    if isinstance(p, PullRequestOpened):
        task.complete(p.url, None)
    elif isinstance(p, PullRequestFailed):
        # The approved changes stay on the task (its results); the error says why no PR.
        task.fail(f"the pull request could not be opened: {p.error}")
    else:
        task.complete(None, f"no pull request opened: {p.reason}")


# How a task reacts to an event about it (the task named in its payload).
REACTIONS: dict[str, Callable[[Task, Event[Any], Batch, DispatchGate], None]] = {
    "run.started": _run_started,
    "run.succeeded": _run_succeeded,
    "run.failed": _run_failed,
    "run.lease_expired": _run_failed,  # a failure, retryable: the next attempt follows it
    "run.released": _run_released,
    "run.budget_stopped": _budget_stopped,
    "gate.decided": _gate_decided,
    "pull_request.opened": _pull_request,
    "pull_request.skipped": _pull_request,
    "pull_request.failed": _pull_request,
}
# Every event type the batch handler decodes and reacts to: the tasks' reactions, the
# workspace's purge and config changes, and the answers at orchestration runs' gates.
REACTED = frozenset({*REACTIONS, "workspace.purged", "workspace.config_updated", "input_gate.answered"})


class Drafts:
    """Plans drafted and not yet saved: when the save conflicts (the task changed meanwhile) and
    the event is handled again on fresh state, the plan is not paid for twice."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.by_task: dict[str, Draft] = {}

    async def get(self, providers: Providers, task: Task) -> Draft:
        key = str(task.id)
        if key not in self.by_task:
            self.by_task[key] = await draft(providers, key, task.request)
            while len(self.by_task) > self.keep:
                del self.by_task[next(iter(self.by_task))]
        return self.by_task[key]


async def on_plan_request(event: EventEnvelope, store: EventStore, providers: Providers, drafts: Drafts) -> list[Task]:
    """Drafts the plan of one task that asked for one (saved with this event's tracking row, so
    a plan is paid for once)."""
    if event.type != "task.plan_requested":
        return []
    requested: Event[TaskPlanRequested] = typed(event)
    task_id = UUID(requested.aggregate_id)
    task = await asyncio.to_thread(store.load, task_id)
    if not isinstance(task, Task) or not task.awaiting_plan or task.status in TERMINAL:
        return []
    drafted = await drafts.get(providers, task)
    config = task.request["config"]
    usage = msgspec.structs.asdict(drafted.usage) if drafted.usage is not None else None
    # The workspace's cap and Schedule as they are now, after the model call: batches handled
    # meanwhile (runs ending) change the Schedule, and a copy from before would conflict.
    slots = Slots(store)
    workspace = [requested.workspace_id]
    slots.adopt(await asyncio.to_thread(store.load_many, aggregate_ids(workspace)), workspace)
    await asyncio.to_thread(
        task.record_plan,
        drafted.subtasks,
        drafted.source,
        drafted.fallback_reason,
        usage,
        config["provider"],
        config["model"],
        drafted.duration_ms,
        slots.gate,  # the plan's first subtasks take slots like any others
    )
    if drafted.fallback_reason:
        log.info("task %s: %s", task.id, drafted.fallback_reason)
    return [task, *slots.to_save()]
