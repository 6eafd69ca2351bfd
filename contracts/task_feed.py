"""Spec 003's tasks family (`/api/tasks`): a workspace's tasks a page at a time, the feed of their
status changes, one task's status, and what retry and stop answer.

The tasks are spec 000's: the same ids, the same status vocabulary, camelCase field names. Every
time is in epoch milliseconds. Fields with no value are sent as `null`, never left out, so every
body has one shape.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.tasks import AgentType, CostBreakdown, TaskStatus

MAX_LIMIT = 200  # items per page
DEFAULT_LIMIT = 50
# A task id as the API gives them out: a UUID in its canonical (lowercase, hyphenated) spelling.
TASK_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

QueuedAt = Annotated[int, msgspec.Meta(description="When the task was submitted (epoch ms).")]
StartedAt = Annotated[
    int | None, msgspec.Meta(description="When its first run started, so the task became `running`; null before.")
]
CompletedAt = Annotated[
    int | None,
    msgspec.Meta(description="When it reached a final status (`completed`, `failed` or `cancelled`); null before."),
]
TaskError = Annotated[str | None, msgspec.Meta(description="Why it failed or was cancelled; null in any other status.")]
NextCursor = Annotated[
    str | None,
    msgspec.Meta(description="Send it back as `cursor` for the next page; null on the last page. Opaque."),
]


class TaskStatusReport(msgspec.Struct, frozen=True, rename="camel"):
    """A task's current status and its times (`GET /api/tasks/{id}/status`); also what stop and
    retry answer (for retry, the new task's)."""

    id: str
    status: TaskStatus
    queued_at: QueuedAt
    started_at: StartedAt
    completed_at: CompletedAt
    updated_at: int
    error: TaskError
    retry_of: Annotated[str | None, msgspec.Meta(description="The failed or cancelled task this one runs again.")]
    retried_by: Annotated[str | None, msgspec.Meta(description="The task that runs this one again.")]


class TaskRepo(msgspec.Struct, frozen=True, rename="camel"):
    """The task's repository, as submitted, without its files."""

    owner: str
    repo: str
    branch: str
    base_branch: str


class TaskSummary(msgspec.Struct, frozen=True, rename="camel"):
    """A task as the list shows it: `GET /tasks/{id}` has the rest (its subtasks, their results)."""

    id: str
    status: TaskStatus
    agent_type: AgentType
    description: str
    repo: TaskRepo
    queued_at: QueuedAt
    started_at: StartedAt
    completed_at: CompletedAt
    updated_at: int
    error: TaskError
    pr_url: str | None
    cost: CostBreakdown
    parent_task_id: str | None
    revision_of: str | None
    revised_by: str | None
    retry_of: str | None
    retried_by: str | None


class TaskPage(msgspec.Struct, frozen=True, rename="camel"):
    tasks: Annotated[list[TaskSummary], msgspec.Meta(description="Newest first (by `queuedAt`).")]
    next_cursor: NextCursor


class TaskTransition(msgspec.Struct, frozen=True, rename="camel"):
    """One status change of one task, with the task's times as they stood then."""

    seq: Annotated[int, msgspec.Meta(description="The seq of the event that made the change.")]
    task_id: str
    status: TaskStatus
    previous_status: Annotated[TaskStatus | None, msgspec.Meta(description="Null for the submission.")]
    occurred_at: int
    queued_at: QueuedAt
    started_at: StartedAt
    completed_at: CompletedAt
    error: TaskError


class TaskHistory(msgspec.Struct, frozen=True, rename="camel"):
    transitions: Annotated[list[TaskTransition], msgspec.Meta(description="Newest first (by `seq`).")]
    next_cursor: NextCursor
