"""Task: the master TODO entry of one submitted piece of work, owned by the planner.

pending -> assigned -> running -> review -> approved -> completed, or failed / cancelled.
A subtask runs when every subtask it depends on has succeeded.

Files are named, never copied (`libs.eventstore.blobs`): the request's repository, each result's
output and the changes map a path to a `FileRef` (digest and size), whose content is stored once.
The logic here only moves those refs between maps; it never needs a file's content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

import msgspec

from contracts.payloads.shapes import BudgetCap, Changes, Files, PlannedSubtask, RunOutput, StepSummary, SubtaskResult
from contracts.payloads.task import (
    TaskApproved,
    TaskCancelled,
    TaskChildLinked,
    TaskCompleted,
    TaskFailed,
    TaskParentCompleted,
    TaskPaused,
    TaskPlanned,
    TaskPlanRequested,
    TaskResumed,
    TaskRetried,
    TaskReviewRequested,
    TaskRevisionRequested,
    TaskStarted,
    TaskSubmitted,
    TaskSubtaskDispatched,
    TaskSubtaskFailed,
    TaskSubtaskQueued,
    TaskSubtaskSucceeded,
)
from contracts.tasks import DEFAULT_MAX_RETRIES
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition
from libs.domain.run import run_id_for

PENDING, ASSIGNED, RUNNING, REVIEW, PAUSED = "pending", "assigned", "running", "review", "paused"
APPROVED, COMPLETED, FAILED, CANCELLED = "approved", "completed", "failed", "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({PENDING, ASSIGNED, RUNNING})

# The planner's concurrency caps, given to each command that may hand a subtask to the executor:
# asked first, it answers whether a slot is free (else the subtask is queued). None: no cap to keep.
DispatchGate = Callable[["Task", str], bool]


def keyed_task_id(workspace_id: str, key: str, index: int = 0) -> UUID:
    """The id of the `index`th task of a submission sent with an idempotency key: the same
    submission sent again finds the tasks it made."""
    return derived_id("keyed_task", workspace_id, key, index)


class Task(WorkspaceAggregate):
    class Submitted(WorkspaceAggregate.Created):
        payload: TaskSubmitted

    def __init__(self, workspace_id: str, payload: TaskSubmitted) -> None:
        self.workspace_id = workspace_id
        # The request as submitted (its repository's files by digest): kept as sent, by design.
        self.request = payload.request
        self.subtasks = payload.subtasks
        self.revision_of = payload.revision_of
        self.retry_of = payload.retry_of
        self.retried_by: str | None = None
        self.status = PENDING
        self.dispatched: list[str] = []
        self.succeeded: dict[str, SubtaskResult] = {}
        self.error: str | None = None
        self.revised_by: str | None = None
        self.pr_url: str | None = None
        self.attempts: dict[str, int] = {}
        # Chaining: a child waits for its parent, then starts from the parent's changes.
        self.parent_task_id: str | None = self.request.get("parentTaskId")
        self.waiting_for_parent = self.parent_task_id is not None
        self.parent_changes = Changes(files={}, deleted=[])
        self.children: list[str] = []
        self.awaiting_plan = False
        self.paused: dict[str, TaskPaused] = {}  # subtask id -> the stopped attempt and its changes
        self.resumes: dict[str, int] = {}  # subtask id -> attempts a budget pause used up
        self.queued: dict[str, TaskSubtaskQueued] = {}  # subtask id -> a dispatch waiting for a slot
        # subtask id -> its latest dispatch: a run given back (`run_released`) is dispatched again as it was.
        self.handed: dict[str, TaskSubtaskDispatched] = {}

    @classmethod
    def submit(
        cls,
        task_id: UUID,
        workspace_id: str,
        request: dict[str, Any],
        subtasks: list[PlannedSubtask],
        revision_of: str | None = None,
        retry_of: str | None = None,
    ) -> Task:
        payload = TaskSubmitted(request=request, subtasks=subtasks, revision_of=revision_of, retry_of=retry_of)
        return cls._create(cls.Submitted, id=task_id, workspace_id=workspace_id, payload=payload)

    # --- queries the planner decides with -------------------------------------------------

    @property
    def settled(self) -> bool:
        """Ended for good: an event store that keeps aggregates between loads lets it go."""
        return self.status in TERMINAL

    def ready_subtasks(self) -> list[PlannedSubtask]:
        """Subtasks not yet dispatched whose dependencies have all succeeded."""
        if self.awaiting_plan:
            return []
        return [
            s for s in self.subtasks if s.id not in self.dispatched and all(d in self.succeeded for d in s.dependencies)
        ]

    def all_succeeded(self) -> bool:
        return not self.awaiting_plan and all(s.id in self.succeeded for s in self.subtasks)

    def subtask(self, subtask_id: str) -> PlannedSubtask:
        for s in self.subtasks:
            if s.id == subtask_id:
                return s
        raise IllegalTransition(f"task {self.id} has no subtask {subtask_id}")

    def base_files(self) -> Files:
        """The request's repository (path -> ref) with the parent task's changes applied (for a chained task)."""
        # The request keeps its files as sent (dicts); the payloads they go into hold FileRefs.
        return apply_changes(msgspec.convert(self.request["repo"]["files"], Files), self.parent_changes)

    def files_for(self, subtask: PlannedSubtask) -> Files:
        """The repository as the subtask sees it: the base plus its dependencies' outputs."""
        files = self.base_files()
        for dep in subtask.dependencies:
            files = apply_changes(files, self.succeeded[dep].output)
        return files

    def earlier_steps(self, subtask: PlannedSubtask) -> list[StepSummary]:
        """What the subtasks it depends on did, for the agent's first message."""
        return [self._summary(self.subtask(d)) for d in subtask.dependencies]

    def summaries(self) -> list[StepSummary]:
        """What each finished subtask did, in plan order, for the pull request's body."""
        return [self._summary(s) for s in self.subtasks if s.id in self.succeeded]

    def _summary(self, subtask: PlannedSubtask) -> StepSummary:
        output = self.succeeded[subtask.id].output
        return StepSummary(subtask_id=subtask.id, agent_type=subtask.agent_type, summary=output.summary)

    def changes(self) -> Changes:
        """Everything the task changed relative to the request's repository, subtask by subtask
        in plan order (a later subtask's version of a file wins)."""
        files: Files = dict(self.parent_changes.files)
        deleted: set[str] = set(self.parent_changes.deleted)
        for s in self.subtasks:
            result = self.succeeded.get(s.id)
            if result is None:
                continue
            for path, ref in result.output.files.items():
                files[path] = ref
                deleted.discard(path)
            for path in result.output.deleted_files:
                files.pop(path, None)
                deleted.add(path)
        return Changes(files=files, deleted=sorted(deleted))

    def max_attempts(self) -> int:
        # The contract's default, the one the request was validated with: a request stored
        # without it (before defaults were filled in) retries as a new one would.
        return 1 + int(self.request.get("config", {}).get("maxRetries", DEFAULT_MAX_RETRIES))

    def _require(self, *allowed: str, action: str) -> None:
        if self.status not in allowed:
            raise IllegalTransition(f"cannot {action} a task in status '{self.status}'")

    # --- commands: each checks the state machine, then emits --------------------------------

    def dispatch_ready(self, gate: DispatchGate | None = None) -> None:
        """Dispatches every subtask whose dependencies have all succeeded (none while the task
        waits for its parent or its plan)."""
        if not self.waiting_for_parent:
            for subtask in self.ready_subtasks():
                self.dispatch(subtask, gate)

    def dispatch(self, subtask: PlannedSubtask, gate: DispatchGate | None = None) -> None:
        self._require(PENDING, ASSIGNED, RUNNING, action="dispatch a subtask of")
        if self.awaiting_plan:
            raise IllegalTransition(f"task {self.id} waits for its plan")
        if self.waiting_for_parent:
            raise IllegalTransition(f"task {self.id} waits for its parent task {self.parent_task_id}")
        if subtask.id in self.dispatched:
            return
        self._dispatch(subtask, 1, gate)

    def _dispatch(
        self,
        subtask: PlannedSubtask,
        attempt: int,
        gate: DispatchGate | None,
        error: str | None = None,
        previous: RunOutput | None = None,
        handover: int = 0,
        previous_run_id: str | None = None,
    ) -> None:
        if gate is not None and not gate(self, subtask.id):
            # The workspace's concurrency cap is reached: the subtask waits for a free slot.
            queued = TaskSubtaskQueued(
                subtask_id=subtask.id,
                attempt=attempt,
                error=error,
                previous=previous,
                handover=handover,
                previous_run_id=previous_run_id,
            )
            self.emit(self.SubtaskQueued, queued)
            return
        self._hand_over(subtask, attempt, error, previous, handover, previous_run_id)

    class SubtaskQueued(WorkspaceAggregate.Event):
        payload: TaskSubtaskQueued

        def apply(self, task: Task) -> None:
            p = self.payload
            task.queued[p.subtask_id] = p
            if p.subtask_id not in task.dispatched:
                task.dispatched.append(p.subtask_id)
            task.attempts[p.subtask_id] = p.attempt

    def release(self, subtask_id: str) -> bool:
        """A slot is free for a queued subtask: it goes to the executor now. False when there
        is nothing to release (the task ended, or the subtask is not queued).

        A paused task's subtask is released too: holding the queue's head would stop every
        other task of the workspace. Its run meets the executor's budget check like any other:
        when its first call would still cross the cap, it stops before that call and resumes
        with the task's other paused subtasks; when the call fits, it runs, and its result is
        kept (the task dispatches what it made ready once it resumes)."""
        waiting = self.queued.get(subtask_id)
        if waiting is None or self.status in TERMINAL:
            return False
        subtask = self.subtask(subtask_id)
        w = waiting
        self._hand_over(subtask, w.attempt, w.error, w.previous, w.handover, w.previous_run_id)
        return True

    def _hand_over(
        self,
        subtask: PlannedSubtask,
        attempt: int,
        error: str | None,
        previous: RunOutput | None,
        handover: int = 0,
        previous_run_id: str | None = None,
    ) -> None:
        self.emit(
            self.SubtaskDispatched,
            TaskSubtaskDispatched(
                subtask_id=subtask.id,
                agent_type=subtask.agent_type,
                description=subtask.description,
                files=self.files_for(subtask),
                config=self.request["config"],
                attempt=attempt,
                earlier=self.earlier_steps(subtask),
                # Self-heal: why the previous attempt failed, and its changes, which this attempt
                # starts from (they stay this subtask's changes, so the checks see them again).
                previous_error=error,
                previous_output=previous,
                run_id=str(run_id_for(str(self.id), subtask.id, attempt, handover)),
                handover=handover,
                previous_run_id=previous_run_id,
            ),
        )

    class SubtaskDispatched(WorkspaceAggregate.Event):
        payload: TaskSubtaskDispatched

        def apply(self, task: Task) -> None:
            p = self.payload
            task.queued.pop(p.subtask_id, None)
            if p.subtask_id not in task.dispatched:
                task.dispatched.append(p.subtask_id)
            task.attempts[p.subtask_id] = p.attempt
            task.handed[p.subtask_id] = p
            if task.status == PENDING:
                task.status = ASSIGNED

    def attempt_failed(
        self,
        subtask_id: str,
        run_id: str,
        attempt: int,
        error: str,
        retryable: bool,
        output: RunOutput | None,
        gate: DispatchGate | None = None,
        lease_expired: bool = False,
    ) -> None:
        """Self-heal: dispatch the next attempt, starting from this one's changes with its error,
        while attempts remain and retrying can help; otherwise the subtask and the task fail.
        An attempt whose lease expired names its run to the next (`previous_run_id`)."""
        subtask = self.subtask(subtask_id)
        if self.status not in (ASSIGNED, RUNNING, PAUSED) or subtask_id in self.succeeded:
            return  # stale: the task moved on, or another attempt already succeeded
        if attempt != self.attempts.get(subtask_id, 1):
            return  # a failure of an attempt already superseded
        # Attempts a budget pause used up are not self-heal retries.
        if retryable and attempt - self.resumes.get(subtask_id, 0) < self.max_attempts():
            handed = self.handed.get(subtask_id)
            if lease_expired and handed is not None:
                # The expired attempt left nothing: the next one starts where it did, with the
                # error and the changes of the attempt before it (counted all the same).
                error, output = handed.previous_error or error, handed.previous_output
            self._dispatch(subtask, attempt + 1, gate, error, output, 0, run_id if lease_expired else None)
            return
        exhausted = retryable  # it would have been retried, had attempts remained
        self.emit(
            self.SubtaskFailed,
            TaskSubtaskFailed(subtask_id=subtask_id, run_id=run_id, error=error, attempts=attempt, exhausted=exhausted),
        )
        reason = f"after {attempt} attempt(s), retries exhausted" if exhausted else "not retryable"
        self.fail(f"subtask {subtask_id} failed ({reason}): {error}")

    def run_released(self, subtask_id: str, run_id: str, gate: DispatchGate | None = None) -> None:
        """Its holder gave the run back: the same attempt is dispatched again, as it was, to a
        new run (`handover` + 1); no attempt is counted."""
        handed = self.handed.get(subtask_id)
        if self.status not in (ASSIGNED, RUNNING, PAUSED) or subtask_id in self.succeeded or handed is None:
            return  # stale: the task moved on
        if handed.run_id is not None and handed.run_id != run_id:
            return  # a run of a dispatch already superseded
        h = handed
        subtask = self.subtask(subtask_id)
        self._dispatch(subtask, h.attempt, gate, h.previous_error, h.previous_output, h.handover + 1, h.previous_run_id)

    def start(self) -> None:
        if self.status == ASSIGNED:
            self.emit(self.Started, TaskStarted())

    class Started(WorkspaceAggregate.Event):
        payload: TaskStarted

        def apply(self, task: Task) -> None:
            task.status = RUNNING

    def record_success(self, subtask_id: str, run_id: str, result: SubtaskResult) -> None:
        self.subtask(subtask_id)
        if subtask_id in self.succeeded or self.status in TERMINAL:
            return  # a redelivered result, or one that arrives after the task ended
        # While paused, subtasks that were already running still finish and count.
        self._require(ASSIGNED, RUNNING, PAUSED, action="record a result on")
        self.emit(self.SubtaskSucceeded, TaskSubtaskSucceeded(subtask_id=subtask_id, run_id=run_id, result=result))

    class SubtaskSucceeded(WorkspaceAggregate.Event):
        payload: TaskSubtaskSucceeded

        def apply(self, task: Task) -> None:
            task.succeeded[self.payload.subtask_id] = self.payload.result
            if task.status != PAUSED:
                task.status = RUNNING

    class SubtaskFailed(WorkspaceAggregate.Event):
        payload: TaskSubtaskFailed  # `exhausted`: self-heal retried until no attempt was left

        def apply(self, task: Task) -> None:
            pass

    def request_review(self) -> None:
        self._require(RUNNING, action="request review of")
        if not self.all_succeeded():
            raise IllegalTransition("review needs every subtask to have succeeded")
        self.emit(self.ReviewRequested, TaskReviewRequested())

    class ReviewRequested(WorkspaceAggregate.Event):
        payload: TaskReviewRequested

        def apply(self, task: Task) -> None:
            task.status = REVIEW

    def approve(self, feedback: str | None) -> None:
        self._require(REVIEW, action="approve")
        # Everything the pull request needs travels with the approval: the executor opens it
        # from this event alone.
        repo = {k: v for k, v in self.request["repo"].items() if k != "files"}
        title = self.request["description"].strip().splitlines()[0][:120]
        approved = TaskApproved(
            feedback=feedback, repo=repo, title=title, changes=self.changes(), summaries=self.summaries()
        )
        self.emit(self.Approved, approved)

    class Approved(WorkspaceAggregate.Event):
        payload: TaskApproved

        def apply(self, task: Task) -> None:
            task.status = APPROVED

    def reject(self, feedback: str | None) -> None:
        self._require(REVIEW, action="reject")
        self.fail(feedback or "rejected by reviewer")

    def revise(self, feedback: str, revision_id: UUID) -> None:
        self._require(REVIEW, action="revise")
        self.emit(self.RevisionRequested, TaskRevisionRequested(feedback=feedback, revision_id=str(revision_id)))
        self.fail(f"revision requested: {feedback}")

    class RevisionRequested(WorkspaceAggregate.Event):
        payload: TaskRevisionRequested

        def apply(self, task: Task) -> None:
            task.revised_by = self.payload.revision_id

    def fail(self, error: str) -> None:
        if self.status in TERMINAL:
            raise IllegalTransition(f"cannot fail a task in status '{self.status}'")
        self.emit(self.Failed, TaskFailed(error=error))

    class Failed(WorkspaceAggregate.Event):
        payload: TaskFailed

        def apply(self, task: Task) -> None:
            task.status = FAILED
            task.error = self.payload.error

    def complete(self, pr_url: str | None, note: str | None) -> None:
        if self.status == COMPLETED:
            return
        self._require(APPROVED, action="complete")
        self.emit(self.Completed, TaskCompleted(pr_url=pr_url, note=note))

    class Completed(WorkspaceAggregate.Event):
        payload: TaskCompleted

        def apply(self, task: Task) -> None:
            task.status = COMPLETED
            task.pr_url = self.payload.pr_url

    # --- budget caps --------------------------------------------------------------------------

    def pause(self, subtask_id: str, run_id: str, attempt: int, cap: BudgetCap, output: RunOutput | None) -> None:
        """A run stopped before crossing a budget cap (`cap`: which, its limit, what was spent,
        what the call would have cost): the subtask waits until the cap is raised (others
        already running finish meanwhile), then runs again from the stopped run's `output`."""
        if self.status not in (ASSIGNED, RUNNING, PAUSED) or attempt != self.attempts.get(subtask_id, 1):
            return  # stale
        self.emit(
            self.Paused, TaskPaused(subtask_id=subtask_id, run_id=run_id, attempt=attempt, cap=cap, output=output)
        )

    class Paused(WorkspaceAggregate.Event):
        payload: TaskPaused

        def apply(self, task: Task) -> None:
            task.status = PAUSED
            task.paused[self.payload.subtask_id] = self.payload

    def resume(self, gate: DispatchGate | None = None) -> None:
        """Goes on where the budget stopped it: each stopped subtask runs again from its
        changes, and whatever became ready meanwhile is dispatched."""
        if self.status != PAUSED or not self.paused:
            return
        stopped = dict(self.paused)
        self.emit(self.Resumed, TaskResumed(subtask_ids=sorted(stopped)))
        for subtask_id, paused in sorted(stopped.items()):
            self._dispatch(self.subtask(subtask_id), paused.attempt + 1, gate, None, paused.output)
        self.dispatch_ready(gate)

    class Resumed(WorkspaceAggregate.Event):
        payload: TaskResumed

        def apply(self, task: Task) -> None:
            task.status = RUNNING
            for subtask_id in self.payload.subtask_ids:
                task.paused.pop(subtask_id, None)
                task.resumes[subtask_id] = task.resumes.get(subtask_id, 0) + 1

    # --- chaining ---------------------------------------------------------------------------

    def link_child(self, child_id: str) -> None:
        if child_id not in self.children:
            self.emit(self.ChildLinked, TaskChildLinked(child_id=child_id))

    class ChildLinked(WorkspaceAggregate.Event):
        payload: TaskChildLinked

        def apply(self, task: Task) -> None:
            task.children.append(self.payload.child_id)

    def start_after_parent(self, parent: Task, gate: DispatchGate | None = None) -> None:
        """The parent completed: take its changes as this task's starting point, then run."""
        if not self.waiting_for_parent or self.status != PENDING:
            return
        self.emit(self.ParentCompleted, TaskParentCompleted(parent_task_id=str(parent.id), changes=parent.changes()))
        self.dispatch_ready(gate)

    class ParentCompleted(WorkspaceAggregate.Event):
        payload: TaskParentCompleted

        def apply(self, task: Task) -> None:
            task.waiting_for_parent = False
            task.parent_changes = self.payload.changes

    # --- planning by the model ---------------------------------------------------------------

    def request_plan(self) -> None:
        """The task waits for a drafted plan (its subtasks are not known yet)."""
        self._require(PENDING, action="plan")
        self.emit(self.PlanRequested, TaskPlanRequested())

    class PlanRequested(WorkspaceAggregate.Event):
        payload: TaskPlanRequested

        def apply(self, task: Task) -> None:
            task.awaiting_plan = True

    def record_plan(
        self,
        subtasks: list[PlannedSubtask],
        source: str,
        fallback_reason: str | None,
        usage: dict[str, int] | None,
        provider: str,
        model: str,
        duration_ms: int,
        gate: DispatchGate | None = None,
    ) -> None:
        """The plan to run, from the model or the template fallback (`fallback_reason` says why);
        `usage` is what drafting it cost, charged to the task."""
        if not self.awaiting_plan or self.status in TERMINAL:
            return  # a redelivery, or the task ended meanwhile
        planned = TaskPlanned(
            subtasks=subtasks,
            source=source,
            fallback_reason=fallback_reason,
            usage=usage,
            provider=provider,
            model=model,
            duration_ms=duration_ms,
        )
        self.emit(self.Planned, planned)
        self.dispatch_ready(gate)

    class Planned(WorkspaceAggregate.Event):
        payload: TaskPlanned

        def apply(self, task: Task) -> None:
            task.subtasks = self.payload.subtasks
            task.awaiting_plan = False

    def cancel(self, reason: str) -> None:
        if self.status in TERMINAL:
            raise IllegalTransition(f"cannot cancel a task in status '{self.status}'")
        self.emit(self.Cancelled, TaskCancelled(reason=reason))

    class Cancelled(WorkspaceAggregate.Event):
        payload: TaskCancelled

        def apply(self, task: Task) -> None:
            task.status = CANCELLED
            task.error = self.payload.reason

    # --- steering on request (spec 003): stop, retry ----------------------------------------

    def stop(self, reason: str) -> None:
        """Cancelled on a client's request. An approved task is refused like a finished one: its
        pull request is being opened, and a stop could not keep it from appearing."""
        self._require(PENDING, ASSIGNED, RUNNING, REVIEW, PAUSED, action="stop")
        self.cancel(reason)

    def retry(self, retry_id: UUID) -> None:
        """A failed or cancelled task runs again as a new task, `retry_id`, which this event links
        it to (and whose `task.submitted` links back). Once: a task is retried by one new task."""
        self._require(FAILED, CANCELLED, action="retry")
        if self.retried_by is not None:
            raise IllegalTransition(f"task {self.id} was retried already, by task {self.retried_by}")
        if self.revised_by is not None:
            raise IllegalTransition(f"task {self.id} was revised: its revision {self.revised_by} carries its work on")
        self.emit(self.Retried, TaskRetried(retry_id=str(retry_id)))

    class Retried(WorkspaceAggregate.Event):
        payload: TaskRetried

        def apply(self, task: Task) -> None:
            task.retried_by = self.payload.retry_id

    def rerun_request(self) -> dict[str, Any]:
        """The request a new execution of this task (a revision, a retry) starts from: a task
        whose parent completed starts where it started, the parent's changes in its files and no
        parent to wait for; one still waiting for its parent when it ended waits for it again."""
        request = dict(self.request)
        if self.waiting_for_parent:
            return request
        # The request keeps its files as sent: refs as the wire has them, not FileRef Structs.
        request["repo"] = {**request["repo"], "files": msgspec.to_builtins(self.base_files())}
        request["parentTaskId"] = None
        return request


def apply_changes(files: Files, changes: RunOutput | Changes) -> Files:
    """`files` with a run's output or a task's changes applied: written files, then deletions."""
    files = dict(files)
    files.update(changes.files)
    for path in changes.deleted_files if isinstance(changes, RunOutput) else changes.deleted:
        files.pop(path, None)
    return files
