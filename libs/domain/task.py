"""Task: the master TODO entry of one submitted piece of work, owned by the planner.

pending -> assigned -> running -> review -> approved -> completed, or failed / cancelled.
A subtask runs when every subtask it depends on has succeeded.

Files are named, never copied (`libs.eventstore.blobs`): the request's repository, each result's
output and the changes map a path to `{"digest", "size"}`, whose content is stored once. The
logic here only moves those refs between maps; it never needs a file's content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from contracts.tasks import DEFAULT_MAX_RETRIES
from libs.domain.base import WorkspaceAggregate
from libs.domain.errors import IllegalTransition

PENDING, ASSIGNED, RUNNING, REVIEW, PAUSED = "pending", "assigned", "running", "review", "paused"
APPROVED, COMPLETED, FAILED, CANCELLED = "approved", "completed", "failed", "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({PENDING, ASSIGNED, RUNNING})

# The planner's concurrency caps, given to each command that may hand a subtask to the executor:
# asked first, it answers whether a slot is free (else the subtask is queued). None: no cap to keep.
DispatchGate = Callable[["Task", str], bool]


class Task(WorkspaceAggregate):
    class Submitted(WorkspaceAggregate.Created):
        request: dict[str, Any]
        subtasks: list[dict[str, Any]]
        revision_of: str | None

    def __init__(
        self, workspace_id: str, request: dict[str, Any], subtasks: list[dict[str, Any]], revision_of: str | None
    ) -> None:
        self.workspace_id = workspace_id
        self.request = request
        self.subtasks = subtasks
        self.revision_of = revision_of
        self.status = PENDING
        self.dispatched: list[str] = []
        self.succeeded: dict[str, dict[str, Any]] = {}
        self.error: str | None = None
        self.revised_by: str | None = None
        self.pr_url: str | None = None
        self.attempts: dict[str, int] = {}
        # Chaining: a child waits for its parent, then starts from the parent's changes.
        self.parent_task_id: str | None = request.get("parentTaskId")
        self.waiting_for_parent = self.parent_task_id is not None
        self.parent_changes: dict[str, Any] = {"files": {}, "deleted": []}
        self.children: list[str] = []
        self.awaiting_plan = False
        self.paused: dict[str, dict[str, Any]] = {}  # subtask id -> the stopped attempt and its changes
        self.resumes: dict[str, int] = {}  # subtask id -> attempts a budget pause used up
        self.queued: dict[str, dict[str, Any]] = {}  # subtask id -> a dispatch waiting for a slot

    @classmethod
    def submit(
        cls,
        task_id: UUID,
        workspace_id: str,
        request: dict[str, Any],
        subtasks: list[dict[str, Any]],
        revision_of: str | None = None,
    ) -> Task:
        return cls._create(
            cls.Submitted,
            id=task_id,
            workspace_id=workspace_id,
            request=request,
            subtasks=subtasks,
            revision_of=revision_of,
        )

    # --- queries the planner decides with -------------------------------------------------

    @property
    def settled(self) -> bool:
        """Ended for good: an event store that keeps aggregates between loads lets it go."""
        return self.status in TERMINAL

    def ready_subtasks(self) -> list[dict[str, Any]]:
        """Subtasks not yet dispatched whose dependencies have all succeeded."""
        if self.awaiting_plan:
            return []
        return [
            s
            for s in self.subtasks
            if s["id"] not in self.dispatched and all(d in self.succeeded for d in s["dependencies"])
        ]

    def all_succeeded(self) -> bool:
        return not self.awaiting_plan and all(s["id"] in self.succeeded for s in self.subtasks)

    def subtask(self, subtask_id: str) -> dict[str, Any]:
        for s in self.subtasks:
            if s["id"] == subtask_id:
                return s
        raise IllegalTransition(f"task {self.id} has no subtask {subtask_id}")

    def base_files(self) -> dict[str, Any]:
        """The request's repository (path -> ref) with the parent task's changes applied (for a chained task)."""
        return apply_changes(dict(self.request["repo"]["files"]), self.parent_changes)

    def files_for(self, subtask: dict[str, Any]) -> dict[str, Any]:
        """The repository as the subtask sees it: the base plus its dependencies' outputs."""
        files = self.base_files()
        for dep in subtask["dependencies"]:
            files = apply_changes(files, self.succeeded[dep].get("output", {}))
        return files

    def earlier_steps(self, subtask: dict[str, Any]) -> list[dict[str, Any]]:
        """What the subtasks it depends on did, for the agent's first message."""
        return [self._summary(self.subtask(d)) for d in subtask["dependencies"]]

    def summaries(self) -> list[dict[str, Any]]:
        """What each finished subtask did, in plan order, for the pull request's body."""
        return [self._summary(s) for s in self.subtasks if s["id"] in self.succeeded]

    def _summary(self, subtask: dict[str, Any]) -> dict[str, Any]:
        output = self.succeeded[subtask["id"]].get("output", {})
        return {"subtaskId": subtask["id"], "agentType": subtask["agentType"], "summary": output.get("summary")}

    def changes(self) -> dict[str, Any]:
        """Everything the task changed relative to the request's repository, subtask by subtask
        in plan order (a later subtask's version of a file wins)."""
        files: dict[str, Any] = dict(self.parent_changes["files"])
        deleted: set[str] = set(self.parent_changes["deleted"])
        for s in self.subtasks:
            output = self.succeeded.get(s["id"], {}).get("output", {})
            for path, ref in output.get("files", {}).items():
                files[path] = ref
                deleted.discard(path)
            for path in output.get("deletedFiles", []):
                files.pop(path, None)
                deleted.add(path)
        return {"files": files, "deleted": sorted(deleted)}

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

    def dispatch(self, subtask: dict[str, Any], gate: DispatchGate | None = None) -> None:
        self._require(PENDING, ASSIGNED, RUNNING, action="dispatch a subtask of")
        if self.awaiting_plan:
            raise IllegalTransition(f"task {self.id} waits for its plan")
        if self.waiting_for_parent:
            raise IllegalTransition(f"task {self.id} waits for its parent task {self.parent_task_id}")
        if subtask["id"] in self.dispatched:
            return
        self._dispatch(subtask, 1, gate)

    def _dispatch(
        self,
        subtask: dict[str, Any],
        attempt: int,
        gate: DispatchGate | None,
        error: str | None = None,
        previous: dict[str, Any] | None = None,
    ) -> None:
        if gate is not None and not gate(self, subtask["id"]):
            # The workspace's concurrency cap is reached: the subtask waits for a free slot.
            self.emit(self.SubtaskQueued, subtask_id=subtask["id"], attempt=attempt, error=error, previous=previous)
            return
        self._hand_over(subtask, attempt, error, previous)

    class SubtaskQueued(WorkspaceAggregate.Event):
        subtask_id: str
        attempt: int
        error: str | None
        previous: dict[str, Any] | None

        def apply(self, task: Task) -> None:
            task.queued[self.subtask_id] = {"attempt": self.attempt, "error": self.error, "previous": self.previous}
            if self.subtask_id not in task.dispatched:
                task.dispatched.append(self.subtask_id)
            task.attempts[self.subtask_id] = self.attempt

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
        self._hand_over(self.subtask(subtask_id), waiting["attempt"], waiting["error"], waiting["previous"])
        return True

    def _hand_over(
        self, subtask: dict[str, Any], attempt: int, error: str | None, previous: dict[str, Any] | None
    ) -> None:
        self.emit(
            self.SubtaskDispatched,
            subtask_id=subtask["id"],
            agent_type=subtask["agentType"],
            description=subtask["description"],
            files=self.files_for(subtask),
            config=self.request["config"],
            attempt=attempt,
            earlier=self.earlier_steps(subtask),
            previous_error=error,
            previous_output=previous,
        )

    class SubtaskDispatched(WorkspaceAggregate.Event):
        subtask_id: str
        agent_type: str
        description: str
        files: dict[str, Any]  # path -> {"digest", "size"}: the snapshot the subtask starts from
        config: dict[str, Any]
        attempt: int
        earlier: list[dict[str, Any]]
        # Self-heal: why the previous attempt failed, and its changes, which this attempt
        # starts from (they stay this subtask's changes, so the checks see them again).
        previous_error: str | None
        previous_output: dict[str, Any] | None

        def apply(self, task: Task) -> None:
            task.queued.pop(self.subtask_id, None)
            if self.subtask_id not in task.dispatched:
                task.dispatched.append(self.subtask_id)
            task.attempts[self.subtask_id] = self.attempt
            if task.status == PENDING:
                task.status = ASSIGNED

    def attempt_failed(
        self,
        subtask_id: str,
        run_id: str,
        attempt: int,
        error: str,
        retryable: bool,
        output: dict[str, Any] | None,
        gate: DispatchGate | None = None,
    ) -> None:
        """Self-heal: dispatch the next attempt, starting from this one's changes with its error,
        while attempts remain and retrying can help; otherwise the subtask and the task fail."""
        subtask = self.subtask(subtask_id)
        if self.status not in (ASSIGNED, RUNNING, PAUSED) or subtask_id in self.succeeded:
            return  # stale: the task moved on, or another attempt already succeeded
        if attempt != self.attempts.get(subtask_id, 1):
            return  # a failure of an attempt already superseded
        # Attempts a budget pause used up are not self-heal retries.
        if retryable and attempt - self.resumes.get(subtask_id, 0) < self.max_attempts():
            self._dispatch(subtask, attempt + 1, gate, error, output)
            return
        exhausted = retryable  # it would have been retried, had attempts remained
        self.emit(
            self.SubtaskFailed, subtask_id=subtask_id, run_id=run_id, error=error, attempts=attempt, exhausted=exhausted
        )
        reason = f"after {attempt} attempt(s), retries exhausted" if exhausted else "not retryable"
        self.fail(f"subtask {subtask_id} failed ({reason}): {error}")

    def start(self) -> None:
        if self.status == ASSIGNED:
            self.emit(self.Started)

    class Started(WorkspaceAggregate.Event):
        def apply(self, task: Task) -> None:
            task.status = RUNNING

    def record_success(self, subtask_id: str, run_id: str, result: dict[str, Any]) -> None:
        self.subtask(subtask_id)
        if subtask_id in self.succeeded or self.status in TERMINAL:
            return  # a redelivered result, or one that arrives after the task ended
        # While paused, subtasks that were already running still finish and count.
        self._require(ASSIGNED, RUNNING, PAUSED, action="record a result on")
        self.emit(self.SubtaskSucceeded, subtask_id=subtask_id, run_id=run_id, result=result)

    class SubtaskSucceeded(WorkspaceAggregate.Event):
        subtask_id: str
        run_id: str
        result: dict[str, Any]

        def apply(self, task: Task) -> None:
            task.succeeded[self.subtask_id] = self.result
            if task.status != PAUSED:
                task.status = RUNNING

    class SubtaskFailed(WorkspaceAggregate.Event):
        subtask_id: str
        run_id: str
        error: str
        attempts: int
        exhausted: bool  # self-heal retried until no attempt was left

        def apply(self, task: Task) -> None:
            pass

    def request_review(self) -> None:
        self._require(RUNNING, action="request review of")
        if not self.all_succeeded():
            raise IllegalTransition("review needs every subtask to have succeeded")
        self.emit(self.ReviewRequested)

    class ReviewRequested(WorkspaceAggregate.Event):
        def apply(self, task: Task) -> None:
            task.status = REVIEW

    def approve(self, feedback: str | None) -> None:
        self._require(REVIEW, action="approve")
        # Everything the pull request needs travels with the approval: the executor opens it
        # from this event alone.
        repo = {k: v for k, v in self.request["repo"].items() if k != "files"}
        title = self.request["description"].strip().splitlines()[0][:120]
        self.emit(
            self.Approved, feedback=feedback, repo=repo, title=title, changes=self.changes(), summaries=self.summaries()
        )

    class Approved(WorkspaceAggregate.Event):
        feedback: str | None
        repo: dict[str, Any]
        title: str
        changes: dict[str, Any]
        summaries: list[dict[str, Any]]

        def apply(self, task: Task) -> None:
            task.status = APPROVED

    def reject(self, feedback: str | None) -> None:
        self._require(REVIEW, action="reject")
        self.fail(feedback or "rejected by reviewer")

    def revise(self, feedback: str, revision_id: UUID) -> None:
        self._require(REVIEW, action="revise")
        self.emit(self.RevisionRequested, feedback=feedback, revision_id=str(revision_id))
        self.fail(f"revision requested: {feedback}")

    class RevisionRequested(WorkspaceAggregate.Event):
        feedback: str
        revision_id: str

        def apply(self, task: Task) -> None:
            task.revised_by = self.revision_id

    def fail(self, error: str) -> None:
        if self.status in TERMINAL:
            raise IllegalTransition(f"cannot fail a task in status '{self.status}'")
        self.emit(self.Failed, error=error)

    class Failed(WorkspaceAggregate.Event):
        error: str

        def apply(self, task: Task) -> None:
            task.status = FAILED
            task.error = self.error

    def complete(self, pr_url: str | None, note: str | None) -> None:
        if self.status == COMPLETED:
            return
        self._require(APPROVED, action="complete")
        self.emit(self.Completed, pr_url=pr_url, note=note)

    class Completed(WorkspaceAggregate.Event):
        pr_url: str | None
        note: str | None

        def apply(self, task: Task) -> None:
            task.status = COMPLETED
            task.pr_url = self.pr_url

    # --- budget caps --------------------------------------------------------------------------

    def pause(
        self, subtask_id: str, run_id: str, attempt: int, cap: dict[str, Any], output: dict[str, Any] | None
    ) -> None:
        """A run stopped before crossing a budget cap: the subtask waits until the cap is raised
        (others already running finish meanwhile)."""
        if self.status not in (ASSIGNED, RUNNING, PAUSED) or attempt != self.attempts.get(subtask_id, 1):
            return  # stale
        self.emit(self.Paused, subtask_id=subtask_id, run_id=run_id, attempt=attempt, cap=cap, output=output)

    class Paused(WorkspaceAggregate.Event):
        subtask_id: str
        run_id: str
        attempt: int
        cap: dict[str, Any]  # which cap, its limit, what was spent, what the call would have cost
        output: dict[str, Any] | None  # the stopped run's changes, which the resumed run starts from

        def apply(self, task: Task) -> None:
            task.status = PAUSED
            task.paused[self.subtask_id] = {"attempt": self.attempt, "output": self.output}

    def resume(self, gate: DispatchGate | None = None) -> None:
        """Goes on where the budget stopped it: each stopped subtask runs again from its
        changes, and whatever became ready meanwhile is dispatched."""
        if self.status != PAUSED or not self.paused:
            return
        stopped = dict(self.paused)
        self.emit(self.Resumed, subtask_ids=sorted(stopped))
        for subtask_id, info in sorted(stopped.items()):
            self._dispatch(self.subtask(subtask_id), info["attempt"] + 1, gate, None, info["output"])
        self.dispatch_ready(gate)

    class Resumed(WorkspaceAggregate.Event):
        subtask_ids: list[str]

        def apply(self, task: Task) -> None:
            task.status = RUNNING
            for subtask_id in self.subtask_ids:
                task.paused.pop(subtask_id, None)
                task.resumes[subtask_id] = task.resumes.get(subtask_id, 0) + 1

    # --- chaining ---------------------------------------------------------------------------

    def link_child(self, child_id: str) -> None:
        if child_id not in self.children:
            self.emit(self.ChildLinked, child_id=child_id)

    class ChildLinked(WorkspaceAggregate.Event):
        child_id: str

        def apply(self, task: Task) -> None:
            task.children.append(self.child_id)

    def start_after_parent(self, parent: Task, gate: DispatchGate | None = None) -> None:
        """The parent completed: take its changes as this task's starting point, then run."""
        if not self.waiting_for_parent or self.status != PENDING:
            return
        self.emit(self.ParentCompleted, parent_task_id=str(parent.id), changes=parent.changes())
        self.dispatch_ready(gate)

    class ParentCompleted(WorkspaceAggregate.Event):
        parent_task_id: str
        changes: dict[str, Any]

        def apply(self, task: Task) -> None:
            task.waiting_for_parent = False
            task.parent_changes = self.changes

    # --- planning by the model ---------------------------------------------------------------

    def request_plan(self) -> None:
        """The task waits for a drafted plan (its subtasks are not known yet)."""
        self._require(PENDING, action="plan")
        self.emit(self.PlanRequested)

    class PlanRequested(WorkspaceAggregate.Event):
        def apply(self, task: Task) -> None:
            task.awaiting_plan = True

    def record_plan(
        self,
        subtasks: list[dict[str, Any]],
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
        self.emit(
            self.Planned,
            subtasks=subtasks,
            source=source,
            fallback_reason=fallback_reason,
            usage=usage,
            provider=provider,
            model=model,
            duration_ms=duration_ms,
        )
        self.dispatch_ready(gate)

    class Planned(WorkspaceAggregate.Event):
        subtasks: list[dict[str, Any]]
        source: str  # "llm" | "template"
        fallback_reason: str | None
        usage: dict[str, int] | None
        provider: str
        model: str
        duration_ms: int

        def apply(self, task: Task) -> None:
            task.subtasks = self.subtasks
            task.awaiting_plan = False

    def cancel(self, reason: str) -> None:
        if self.status in TERMINAL:
            raise IllegalTransition(f"cannot cancel a task in status '{self.status}'")
        self.emit(self.Cancelled, reason=reason)

    class Cancelled(WorkspaceAggregate.Event):
        reason: str

        def apply(self, task: Task) -> None:
            task.status = CANCELLED
            task.error = self.reason


def apply_changes(files: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`files` with a run's or a task's output applied: written files, then deletions."""
    files = dict(files)
    files.update(changes.get("files", {}))
    for path in changes.get("deletedFiles", changes.get("deleted", [])):
        files.pop(path, None)
    return files
