"""Bodies of the NATS request/reply commands between the gateway and the aggregate owners."""

from __future__ import annotations

from typing import Any

import msgspec


class SubmitTasksCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    tasks: list[dict[str, Any]]  # validated `TaskRequest`s, in wire form


class DecideReviewCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    task_id: str
    decision: str
    feedback: str | None = None


class AskQuestionCommand(msgspec.Struct, frozen=True):
    """From an agent's run (the executor) to the owner of gates (review)."""

    workspace_id: str
    question_id: str
    task_id: str
    run_id: str
    questions: list[dict[str, Any]]  # `QuestionItem`s, in wire form
    tool: dict[str, str]  # messageID, callID
    # The asking run's subtask and agent type: the task's live log names them with the question.
    subtask_id: str = ""
    agent_type: str = ""


class AnswerQuestionCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    question_id: str
    answers: list[list[str]]


class CommandError(msgspec.Struct, frozen=True):
    status: int
    error: str
    message: str


class CommandReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """`seq` is the last event the command appended: reads wait for the read models to reach it."""

    seq: int = 0
    task_ids: list[str] = []
    status: str | None = None
    # An asked question's expiry (epoch ms): the asking run waits for its outcome until then.
    expires_at: int | None = None
    error: CommandError | None = None
