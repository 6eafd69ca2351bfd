"""The payloads of a Task's events (owner: the planner): `task.<event>` on the wire."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.payloads.shapes import (
    BudgetCap,
    Changes,
    Files,
    Payload,
    PlannedSubtask,
    RunOutput,
    StepSummary,
    SubtaskResult,
)


class TaskSubmitted(Payload, frozen=True, kw_only=True):
    # The TaskRequest as submitted (camelCase; its `repo.files` are files by digest, or contents
    # in a task stored before blobs): kept as sent, so a request of any age converts.
    request: dict[str, Any]
    subtasks: list[PlannedSubtask]  # empty while a drafted plan is awaited
    revision_of: str | None = None
    retry_of: str | None = None  # the failed or cancelled task this one runs again (spec 003's retry)


class TaskPlanRequested(Payload, frozen=True, kw_only=True):
    pass


class TaskPlanned(Payload, frozen=True, kw_only=True):
    subtasks: list[PlannedSubtask]
    source: str  # "llm" | "template"
    fallback_reason: str | None = None
    usage: dict[str, int] | None  # the drafting call's tokens; null when the call failed
    provider: str
    model: str
    duration_ms: int = 0


class TaskSubtaskQueued(Payload, frozen=True, kw_only=True):
    subtask_id: str
    attempt: int
    error: str | None
    previous: RunOutput | None
    handover: int = 0
    previous_run_id: str | None = None


class TaskSubtaskDispatched(Payload, frozen=True, kw_only=True):
    subtask_id: str
    agent_type: str
    description: str
    files: Files  # the snapshot the subtask starts from
    config: dict[str, Any]  # the request's AgentConfig (camelCase), as the request stored it
    attempt: int
    earlier: list[StepSummary] = []
    previous_error: str | None = None
    previous_output: RunOutput | None = None
    # The run that takes it (absent from a dispatch stored before leases: `run_id_for`), the
    # times this attempt was given back before (spec 002's `release`), and the run it follows
    # when the one before had its lease expire.
    run_id: str | None = None
    handover: int = 0
    previous_run_id: str | None = None


class TaskStarted(Payload, frozen=True, kw_only=True):
    pass


class TaskSubtaskSucceeded(Payload, frozen=True, kw_only=True):
    subtask_id: str
    run_id: str
    result: SubtaskResult


class TaskSubtaskFailed(Payload, frozen=True, kw_only=True):
    subtask_id: str
    run_id: str
    error: str
    attempts: int
    exhausted: bool


class TaskReviewRequested(Payload, frozen=True, kw_only=True):
    pass


class TaskApproved(Payload, frozen=True, kw_only=True):
    feedback: str | None
    repo: dict[str, Any]  # the request's RepoContext without its files (camelCase)
    title: str
    changes: Changes
    summaries: list[StepSummary]


class TaskRevisionRequested(Payload, frozen=True, kw_only=True):
    feedback: str
    revision_id: str


class TaskFailed(Payload, frozen=True, kw_only=True):
    error: str


class TaskCompleted(Payload, frozen=True, kw_only=True):
    pr_url: str | None
    note: str | None = None


class TaskPaused(Payload, frozen=True, kw_only=True):
    subtask_id: str
    run_id: str
    attempt: int
    cap: BudgetCap
    output: RunOutput | None


class TaskResumed(Payload, frozen=True, kw_only=True):
    subtask_ids: list[str]


class TaskChildLinked(Payload, frozen=True, kw_only=True):
    child_id: str


class TaskParentCompleted(Payload, frozen=True, kw_only=True):
    parent_task_id: str
    changes: Changes


class TaskCancelled(Payload, frozen=True, kw_only=True):
    reason: str


class TaskRetried(Payload, frozen=True, kw_only=True):
    retry_id: str  # the new task that runs this one again


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "task.submitted": TaskSubmitted,
    "task.plan_requested": TaskPlanRequested,
    "task.planned": TaskPlanned,
    "task.subtask_queued": TaskSubtaskQueued,
    "task.subtask_dispatched": TaskSubtaskDispatched,
    "task.started": TaskStarted,
    "task.subtask_succeeded": TaskSubtaskSucceeded,
    "task.subtask_failed": TaskSubtaskFailed,
    "task.review_requested": TaskReviewRequested,
    "task.approved": TaskApproved,
    "task.revision_requested": TaskRevisionRequested,
    "task.failed": TaskFailed,
    "task.completed": TaskCompleted,
    "task.paused": TaskPaused,
    "task.resumed": TaskResumed,
    "task.child_linked": TaskChildLinked,
    "task.parent_completed": TaskParentCompleted,
    "task.cancelled": TaskCancelled,
    "task.retried": TaskRetried,
}
