"""Gates: human decision points (a task's review, an agent's question, an orchestration's human
step), owned by the review service."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from contracts.payloads.gate import GateDecided, GateOpened
from contracts.payloads.input_gate import InputGateAnswered, InputGateOpened
from contracts.payloads.question_gate import QuestionGateAnswered, QuestionGateAsked, QuestionGateExpired
from contracts.questions import QuestionItem, ToolRef
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import GateClosed

TASK_REVIEW = "task_review"


def review_gate_id(task_id: str) -> UUID:
    return derived_id("gate", TASK_REVIEW, task_id)


class Gate(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        payload: GateOpened

    def __init__(self, workspace_id: str, payload: GateOpened) -> None:
        self.workspace_id = workspace_id
        self.task_id = payload.task_id
        self.kind = payload.kind
        self.decision: str | None = None

    @classmethod
    def open_review(cls, workspace_id: str, task_id: str) -> Gate:
        opened = GateOpened(task_id=task_id, kind=TASK_REVIEW)
        return cls._create(cls.Opened, id=review_gate_id(task_id), workspace_id=workspace_id, payload=opened)

    def decide(self, decision: str, feedback: str | None) -> None:
        if self.decision is not None:
            raise GateClosed(f"task {self.task_id} was already decided: {self.decision}")
        self.emit(self.Decided, GateDecided(task_id=self.task_id, decision=decision, feedback=feedback))

    class Decided(WorkspaceAggregate.Event):
        payload: GateDecided

        def apply(self, gate: Gate) -> None:
            gate.decision = self.payload.decision


QUESTION = "question"


def question_gate_id(question_id: str) -> UUID:
    return derived_id("gate", QUESTION, question_id)


class QuestionGate(WorkspaceAggregate):
    """An agent's question to a human: open until answered, or until it expires."""

    class Asked(WorkspaceAggregate.Created):
        # `subtask_id` and `agent_type`: the asking run's, under which the task's live log shows it.
        payload: QuestionGateAsked

    def __init__(self, workspace_id: str, payload: QuestionGateAsked) -> None:
        self.workspace_id = workspace_id
        self.subtask_id = payload.subtask_id
        self.agent_type = payload.agent_type
        self.question_id = payload.question_id
        self.task_id = payload.task_id
        self.run_id = payload.run_id
        self.questions = payload.questions
        self.tool = payload.tool
        self.expires_at = payload.expires_at
        self.status = "open"
        self.answers: list[list[str]] | None = None

    @classmethod
    def ask(
        cls,
        workspace_id: str,
        question_id: str,
        task_id: str,
        run_id: str,
        questions: list[QuestionItem],
        tool: ToolRef,
        expires_at: int,
        subtask_id: str = "",
        agent_type: str = "",
    ) -> QuestionGate:
        asked = QuestionGateAsked(
            question_id=question_id,
            task_id=task_id,
            run_id=run_id,
            questions=questions,
            tool=tool,
            expires_at=expires_at,
            subtask_id=subtask_id,
            agent_type=agent_type,
        )
        return cls._create(cls.Asked, id=question_gate_id(question_id), workspace_id=workspace_id, payload=asked)

    def _require_open(self) -> None:
        if self.status != "open":
            raise GateClosed(f"question {self.question_id} is {self.status}")

    # An answer or an expiry repeats what the question was about, so that its event alone says
    # which run and subtask it concerns (the task's live log line is derived from it).

    def answer(self, answers: list[list[str]]) -> None:
        self._require_open()
        answered = QuestionGateAnswered(
            question_id=self.question_id,
            task_id=self.task_id,
            run_id=self.run_id,
            subtask_id=self.subtask_id,
            agent_type=self.agent_type,
            answers=answers,
        )
        self.emit(self.Answered, answered)

    class Answered(WorkspaceAggregate.Event):
        payload: QuestionGateAnswered

        def apply(self, gate: QuestionGate) -> None:
            gate.status = "answered"
            gate.answers = self.payload.answers

    def expire(self) -> None:
        self._require_open()
        expired = QuestionGateExpired(
            question_id=self.question_id,
            task_id=self.task_id,
            run_id=self.run_id,
            subtask_id=self.subtask_id,
            agent_type=self.agent_type,
        )
        self.emit(self.Expired, expired)

    class Expired(WorkspaceAggregate.Event):
        payload: QuestionGateExpired

        def apply(self, gate: QuestionGate) -> None:
            gate.status = "expired"


HUMAN_INPUT = "human_input"


def input_gate_id(orchestration_run_id: str, gate: str) -> UUID:
    """One gate per pause of a run (a loop that pauses at a step again is a new gate)."""
    return derived_id("gate", HUMAN_INPUT, orchestration_run_id, gate)


class InputGate(WorkspaceAggregate):
    """A person's answer to a human step of an orchestration run (spec 004's resume), kept so
    that the run is resumed once per pause, and a retried resume is told from another."""

    class Opened(WorkspaceAggregate.Created):
        payload: InputGateOpened

    def __init__(self, workspace_id: str, payload: InputGateOpened) -> None:
        self.workspace_id = workspace_id
        self.opened = payload
        self.response: dict[str, Any] | None = None

    @classmethod
    def open(cls, workspace_id: str, opened: InputGateOpened) -> InputGate:
        gate_id = input_gate_id(opened.task_id, opened.gate)
        return cls._create(cls.Opened, id=gate_id, workspace_id=workspace_id, payload=opened)

    def answer(self, response: dict[str, Any]) -> None:
        if self.response is not None:
            raise GateClosed(f"run {self.opened.run_id} was already resumed at {self.opened.step_id}")
        o = self.opened
        answered = InputGateAnswered(
            task_id=o.task_id, run_id=o.run_id, step_id=o.step_id, gate=o.gate, response=response
        )
        self.emit(self.Answered, answered)

    class Answered(WorkspaceAggregate.Event):
        payload: InputGateAnswered

        def apply(self, gate: InputGate) -> None:
            gate.response = self.payload.response
