"""PullRequest: the one publication of an approved task's changes, owned by the executor.

Created once per task (its id derives from the task's), so a redelivered approval finds it
and opens nothing. Without GitHub credentials it is recorded as skipped, with the reason; when
GitHub refuses or cannot be reached, as failed, with GitHub's error.
"""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.pull_request import PullRequestFailed, PullRequestOpened, PullRequestSkipped
from libs.domain.base import WorkspaceAggregate, derived_id


def pull_request_id(task_id: str) -> UUID:
    return derived_id("pull_request", task_id)


class PullRequest(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        payload: PullRequestOpened

    class Skipped(WorkspaceAggregate.Created):
        payload: PullRequestSkipped

    class Failed(WorkspaceAggregate.Created):
        payload: PullRequestFailed

    def __init__(self, workspace_id: str, payload: PullRequestOpened | PullRequestSkipped | PullRequestFailed) -> None:
        self.workspace_id = workspace_id
        self.task_id = payload.task_id
        self.url = payload.url if isinstance(payload, PullRequestOpened) else None
        self.number = payload.number if isinstance(payload, PullRequestOpened) else None
        self.skipped_reason = payload.reason if isinstance(payload, PullRequestSkipped) else None
        self.error = payload.error if isinstance(payload, PullRequestFailed) else None

    @classmethod
    def opened(cls, workspace_id: str, task_id: str, url: str, number: int) -> PullRequest:
        opened = PullRequestOpened(task_id=task_id, url=url, number=number)
        return cls._create(cls.Opened, id=pull_request_id(task_id), workspace_id=workspace_id, payload=opened)

    @classmethod
    def skipped(cls, workspace_id: str, task_id: str, reason: str) -> PullRequest:
        skipped = PullRequestSkipped(task_id=task_id, reason=reason)
        return cls._create(cls.Skipped, id=pull_request_id(task_id), workspace_id=workspace_id, payload=skipped)

    @classmethod
    def failed(cls, workspace_id: str, task_id: str, error: str) -> PullRequest:
        failed = PullRequestFailed(task_id=task_id, error=error)
        return cls._create(cls.Failed, id=pull_request_id(task_id), workspace_id=workspace_id, payload=failed)
