"""IntakeRequest: what the intake service did about one accepted GitHub webhook delivery (a
command comment); owned by the intake.

Its id derives from the task the delivery makes (itself derived from the delivery), so both the
delivery and, later, the task's end find it. Its events are the steps already taken: the task
created or the command refused, and each reply on the issue, each made once.
"""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.intake_request import (
    IntakeRequestRefused,
    IntakeRequestReplied,
    IntakeRequestTaskCreated,
    Reply,
)
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.task import keyed_task_id


def delivery_task_id(workspace_id: str, delivery_id: str) -> UUID:
    """The task a delivery makes: the delivery's id is its submission's idempotency key."""
    return keyed_task_id(workspace_id, f"github-delivery:{delivery_id}")


def intake_request_id(task_id: UUID | str) -> UUID:
    return derived_id("intake_request", task_id)


class IntakeRequest(WorkspaceAggregate):
    class TaskCreated(WorkspaceAggregate.Created):
        payload: IntakeRequestTaskCreated

    class Refused(WorkspaceAggregate.Created):
        payload: IntakeRequestRefused

    def __init__(self, workspace_id: str, payload: IntakeRequestTaskCreated | IntakeRequestRefused) -> None:
        self.workspace_id = workspace_id
        self.delivery_id = payload.delivery_id
        self.installation_id = payload.installation_id
        self.owner, self.repo, self.issue_number = payload.owner, payload.repo, payload.issue_number
        self.task_id = payload.task_id if isinstance(payload, IntakeRequestTaskCreated) else None
        self.refusal = payload.reason if isinstance(payload, IntakeRequestRefused) else None
        self.replies: dict[Reply, int] = {}

    @classmethod
    def task_created(cls, workspace_id: str, created: IntakeRequestTaskCreated) -> IntakeRequest:
        return cls._create(
            cls.TaskCreated, id=intake_request_id(created.task_id), workspace_id=workspace_id, payload=created
        )

    @classmethod
    def refused(cls, workspace_id: str, refused: IntakeRequestRefused) -> IntakeRequest:
        task_id = delivery_task_id(workspace_id, refused.delivery_id)
        return cls._create(cls.Refused, id=intake_request_id(task_id), workspace_id=workspace_id, payload=refused)

    def replied(self, about: Reply, comment_id: int) -> None:
        if about not in self.replies:
            self.emit(self.Replied, IntakeRequestReplied(about=about, comment_id=comment_id))

    class Replied(WorkspaceAggregate.Event):
        payload: IntakeRequestReplied

        def apply(self, request: IntakeRequest) -> None:
            request.replies[self.payload.about] = self.payload.comment_id
