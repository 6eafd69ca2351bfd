"""Gates: human decision points (a task's review, an agent's question), owned by the review service."""

from __future__ import annotations

from typing import Any
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


QUESTION = "question"


def question_gate_id(question_id: str) -> UUID:
    return derived_id("gate", QUESTION, question_id)


class QuestionGate(WorkspaceAggregate):
    """An agent's question to a human: open until answered, or until it expires."""

    class Asked(WorkspaceAggregate.Created):
        question_id: str
        task_id: str
        run_id: str
        questions: list[dict[str, Any]]
        tool: dict[str, str]
        expires_at: int  # epoch ms
        # The asking run's subtask and agent type: the task's live log shows the question under them.
        subtask_id: str
        agent_type: str

    def __init__(
        self,
        workspace_id: str,
        question_id: str,
        task_id: str,
        run_id: str,
        questions: list[dict[str, Any]],
        tool: dict[str, str],
        expires_at: int,
        subtask_id: str = "",  # absent from questions recorded before it existed
        agent_type: str = "",
    ) -> None:
        self.workspace_id = workspace_id
        self.subtask_id = subtask_id
        self.agent_type = agent_type
        self.question_id = question_id
        self.task_id = task_id
        self.run_id = run_id
        self.questions = questions
        self.tool = tool
        self.expires_at = expires_at
        self.status = "open"
        self.answers: list[list[str]] | None = None

    @classmethod
    def ask(
        cls,
        workspace_id: str,
        question_id: str,
        task_id: str,
        run_id: str,
        questions: list[dict[str, Any]],
        tool: dict[str, str],
        expires_at: int,
        subtask_id: str = "",
        agent_type: str = "",
    ) -> QuestionGate:
        return cls._create(
            cls.Asked,
            id=question_gate_id(question_id),
            workspace_id=workspace_id,
            question_id=question_id,
            task_id=task_id,
            run_id=run_id,
            questions=questions,
            tool=tool,
            expires_at=expires_at,
            subtask_id=subtask_id,
            agent_type=agent_type,
        )

    def _require_open(self) -> None:
        if self.status != "open":
            raise GateClosed(f"question {self.question_id} is {self.status}")

    def answer(self, answers: list[list[str]]) -> None:
        self._require_open()
        self.emit(self.Answered, answers=answers, **self._about())

    class Answered(WorkspaceAggregate.Event):
        question_id: str
        task_id: str
        run_id: str
        subtask_id: str
        agent_type: str
        answers: list[list[str]]

        def apply(self, gate: QuestionGate) -> None:
            gate.status = "answered"
            gate.answers = self.answers

    def expire(self) -> None:
        self._require_open()
        self.emit(self.Expired, **self._about())

    def _about(self) -> dict[str, str]:
        """What an answer or an expiry repeats of the question, so that its event alone says
        which run and subtask it concerns (the task's live log line is derived from it)."""
        return {
            "question_id": self.question_id,
            "task_id": self.task_id,
            "run_id": self.run_id,
            "subtask_id": self.subtask_id,
            "agent_type": self.agent_type,
        }

    class Expired(WorkspaceAggregate.Event):
        question_id: str
        task_id: str
        run_id: str
        subtask_id: str
        agent_type: str

        def apply(self, gate: QuestionGate) -> None:
            gate.status = "expired"
