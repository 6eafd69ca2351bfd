"""Agents' questions to a human (spec 001 `.../orchestration/questions`): their shape, the
answer body, and the rule an answer must follow."""

from __future__ import annotations

from typing import Annotated

import msgspec

from contracts.tasks import MAX_TEXT, NO_NUL, NonEmpty, Text

MAX_QUESTIONS = 10
MAX_OPTIONS = 20


class QuestionOption(msgspec.Struct, frozen=True, omit_defaults=True):
    label: NonEmpty
    description: Text | None = None


class QuestionItem(msgspec.Struct, frozen=True):
    question: NonEmpty
    header: Text = ""
    options: Annotated[list[QuestionOption], msgspec.Meta(max_length=MAX_OPTIONS)] = []
    multiple: bool = False  # several options may be picked
    custom: bool = False  # an answer of one's own words is allowed


class ToolRef(msgspec.Struct, frozen=True):
    """The agent's tool call that asked."""

    message_id: str = msgspec.field(name="messageID")
    call_id: str = msgspec.field(name="callID")


class Question(msgspec.Struct, frozen=True):
    id: str
    session_id: str = msgspec.field(name="sessionID")
    questions: list[QuestionItem] = []
    tool: ToolRef | None = None


class QuestionList(msgspec.Struct, frozen=True):
    questions: list[Question]


class QuestionEnvelope(msgspec.Struct, frozen=True):
    question: Question


# One pick: an option's label, or one's own words where the question allows them.
Pick = Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=NO_NUL)]


class Answer(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One inner list of picked labels (or own words, where `custom`) per question: at most
    every option and one answer of one's own."""

    answers: Annotated[
        list[Annotated[list[Pick], msgspec.Meta(max_length=MAX_OPTIONS + 1)]], msgspec.Meta(max_length=MAX_QUESTIONS)
    ]


class Answered(msgspec.Struct, frozen=True):
    answered: bool


def answer_problem(questions: list[QuestionItem], answers: list[list[str]]) -> str | None:
    """Why `answers` do not fit `questions`, or None when they do."""
    if len(answers) != len(questions):
        return f"expected {len(questions)} answer list(s), one per question; got {len(answers)}"
    for number, (item, picked) in enumerate(zip(questions, answers, strict=True), start=1):
        labels = {o.label for o in item.options}
        if not picked:
            return f"question {number}: pick at least one answer"
        if len(picked) > 1 and not item.multiple:
            return f"question {number} takes one answer; got {len(picked)}"
        unknown = [p for p in picked if p not in labels]
        if unknown and not item.custom:
            return f"question {number}: {unknown[0]!r} is not one of its options ({', '.join(sorted(labels))})"
        if any(not p.strip() for p in picked):
            return f"question {number}: an answer must not be blank"
    return None
