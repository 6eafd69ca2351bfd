"""Gate: a human decision point (here the task review), owned by the review service."""

from __future__ import annotations

from uuid import UUID

from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import GateClosed

TASK_REVIEW = "task_review"


def review_gate_id(task_id: str) -> UUID:
    return derived_id("gate", TASK_REVIEW, task_id)


class Gate(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        task_id: str
        kind: str

    def __init__(self, workspace_id: str, task_id: str, kind: str) -> None:
        self.workspace_id = workspace_id
        self.task_id = task_id
        self.kind = kind
        self.decision: str | None = None

    @classmethod
    def open_review(cls, workspace_id: str, task_id: str) -> Gate:
        return cls._create(
            cls.Opened, id=review_gate_id(task_id), workspace_id=workspace_id, task_id=task_id, kind=TASK_REVIEW
        )

    def decide(self, decision: str, feedback: str | None) -> None:
        if self.decision is not None:
            raise GateClosed(f"task {self.task_id} was already decided: {self.decision}")
        self.emit(self.Decided, task_id=self.task_id, decision=decision, feedback=feedback)

    class Decided(WorkspaceAggregate.Event):
        task_id: str
        decision: str
        feedback: str | None

        def apply(self, gate: Gate) -> None:
            gate.decision = self.decision
