"""PullRequest: the one publication of an approved task's changes, owned by the executor.

Created once per task (its id derives from the task's), so a redelivered approval finds it
and opens nothing. Without GitHub credentials it is recorded as skipped, with the reason; when
GitHub refuses or cannot be reached, as failed, with GitHub's error.
"""

from __future__ import annotations

from uuid import UUID

from libs.domain.base import WorkspaceAggregate, derived_id


def pull_request_id(task_id: str) -> UUID:
    return derived_id("pull_request", task_id)


class PullRequest(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        task_id: str
        url: str
        number: int

    class Skipped(WorkspaceAggregate.Created):
        task_id: str
        reason: str

    class Failed(WorkspaceAggregate.Created):
        task_id: str
        error: str

    def __init__(
        self,
        workspace_id: str,
        task_id: str,
        url: str | None = None,
        number: int | None = None,
        reason: str | None = None,
        error: str | None = None,
    ) -> None:
        self.workspace_id = workspace_id
        self.task_id = task_id
        self.url = url
        self.number = number
        self.skipped_reason = reason
        self.error = error

    @classmethod
    def opened(cls, workspace_id: str, task_id: str, url: str, number: int) -> PullRequest:
        return cls._create(
            cls.Opened, id=pull_request_id(task_id), workspace_id=workspace_id, task_id=task_id, url=url, number=number
        )

    @classmethod
    def skipped(cls, workspace_id: str, task_id: str, reason: str) -> PullRequest:
        return cls._create(
            cls.Skipped, id=pull_request_id(task_id), workspace_id=workspace_id, task_id=task_id, reason=reason
        )

    @classmethod
    def failed(cls, workspace_id: str, task_id: str, error: str) -> PullRequest:
        return cls._create(
            cls.Failed, id=pull_request_id(task_id), workspace_id=workspace_id, task_id=task_id, error=error
        )
