"""Task: the master TODO entry of one submitted piece of work, owned by the planner.

pending -> assigned -> running -> review -> approved -> completed, or failed / cancelled.
A subtask runs when every subtask it depends on has succeeded.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.domain.base import WorkspaceAggregate
from libs.domain.errors import IllegalTransition

PENDING, ASSIGNED, RUNNING, REVIEW = "pending", "assigned", "running", "review"
APPROVED, COMPLETED, FAILED, CANCELLED = "approved", "completed", "failed", "cancelled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELLED})
ACTIVE = frozenset({PENDING, ASSIGNED, RUNNING})


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

    def ready_subtasks(self) -> list[dict[str, Any]]:
        """Subtasks not yet dispatched whose dependencies have all succeeded."""
        return [
            s
            for s in self.subtasks
            if s["id"] not in self.dispatched and all(d in self.succeeded for d in s["dependencies"])
        ]

    def all_succeeded(self) -> bool:
        return all(s["id"] in self.succeeded for s in self.subtasks)

    def subtask(self, subtask_id: str) -> dict[str, Any]:
        for s in self.subtasks:
            if s["id"] == subtask_id:
                return s
        raise IllegalTransition(f"task {self.id} has no subtask {subtask_id}")

    def files_for(self, subtask: dict[str, Any]) -> dict[str, str]:
        """The repository as the subtask sees it: the snapshot plus its dependencies' outputs."""
        files = dict(self.request["repo"]["files"])
        for dep in subtask["dependencies"]:
            files.update(self.succeeded[dep].get("output", {}).get("files", {}))
        return files

    def _require(self, *allowed: str, action: str) -> None:
        if self.status not in allowed:
            raise IllegalTransition(f"cannot {action} a task in status '{self.status}'")

    # --- commands: each checks the state machine, then emits --------------------------------

    def dispatch(self, subtask: dict[str, Any]) -> None:
        self._require(PENDING, ASSIGNED, RUNNING, action="dispatch a subtask of")
        if subtask["id"] in self.dispatched:
            return
        self.emit(
            self.SubtaskDispatched,
            subtask_id=subtask["id"],
            agent_type=subtask["agentType"],
            description=subtask["description"],
            files=self.files_for(subtask),
            config=self.request["config"],
            attempt=1,
        )

    class SubtaskDispatched(WorkspaceAggregate.Event):
        subtask_id: str
        agent_type: str
        description: str
        files: dict[str, str]
        config: dict[str, Any]
        attempt: int

        def apply(self, task: Task) -> None:
            task.dispatched.append(self.subtask_id)
            if task.status == PENDING:
                task.status = ASSIGNED

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
        self._require(ASSIGNED, RUNNING, action="record a result on")
        self.emit(self.SubtaskSucceeded, subtask_id=subtask_id, run_id=run_id, result=result)

    class SubtaskSucceeded(WorkspaceAggregate.Event):
        subtask_id: str
        run_id: str
        result: dict[str, Any]

        def apply(self, task: Task) -> None:
            task.succeeded[self.subtask_id] = self.result
            task.status = RUNNING

    def record_failure(self, subtask_id: str, run_id: str, error: str) -> None:
        self.subtask(subtask_id)
        if self.status not in (ASSIGNED, RUNNING) or subtask_id in self.succeeded:
            return  # a stale failure: the task moved on, or another attempt already succeeded
        self.emit(self.SubtaskFailed, subtask_id=subtask_id, run_id=run_id, error=error)
        self.fail(f"subtask {subtask_id} failed: {error}")

    class SubtaskFailed(WorkspaceAggregate.Event):
        subtask_id: str
        run_id: str
        error: str

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
        self.emit(self.Approved, feedback=feedback)

    class Approved(WorkspaceAggregate.Event):
        feedback: str | None

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

    def cancel(self, reason: str) -> None:
        if self.status in TERMINAL:
            raise IllegalTransition(f"cannot cancel a task in status '{self.status}'")
        self.emit(self.Cancelled, reason=reason)

    class Cancelled(WorkspaceAggregate.Event):
        reason: str

        def apply(self, task: Task) -> None:
            task.status = CANCELLED
            task.error = self.reason
