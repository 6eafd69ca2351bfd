"""The payloads of a QuestionGate's events (owner: review): `question_gate.<event>` on the wire.

`subtask_id` and `agent_type` (the asking run's, for its live log line) are `""` in an event
stored before they existed."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload
from contracts.questions import QuestionItem, ToolRef


class QuestionGateAsked(Payload, frozen=True, kw_only=True):
    question_id: str
    task_id: str
    run_id: str
    questions: list[QuestionItem]
    tool: ToolRef
    expires_at: int  # epoch ms
    subtask_id: str = ""
    agent_type: str = ""


class QuestionGateAnswered(Payload, frozen=True, kw_only=True):
    question_id: str
    task_id: str
    run_id: str
    subtask_id: str = ""
    agent_type: str = ""
    answers: list[list[str]]  # one list of picks per question


class QuestionGateExpired(Payload, frozen=True, kw_only=True):
    question_id: str
    task_id: str
    run_id: str
    subtask_id: str = ""
    agent_type: str = ""


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "question_gate.asked": QuestionGateAsked,
    "question_gate.answered": QuestionGateAnswered,
    "question_gate.expired": QuestionGateExpired,
}
