"""The payloads of an IntakeRequest's events (owner: the intake service):
`intake_request.<event>` on the wire. What the intake did about one accepted webhook delivery, so
each step happens once across redeliveries and restarts."""

from __future__ import annotations

from typing import Literal

import msgspec

from contracts.payloads.shapes import Payload


class IntakeRequestTaskCreated(Payload, frozen=True, kw_only=True):
    delivery_id: str
    task_id: str
    installation_id: int  # the App's installation the replies are made through
    owner: str
    repo: str
    issue_number: int


class IntakeRequestRefused(Payload, frozen=True, kw_only=True):
    delivery_id: str
    installation_id: int
    owner: str
    repo: str
    issue_number: int
    reason: str


# Which reply: the refusal, the task's link, or the task's end (or the planner's refusal of it).
Reply = Literal["refused", "task_created", "completed", "failed"]


class IntakeRequestReplied(Payload, frozen=True, kw_only=True):
    about: Reply
    comment_id: int


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "intake_request.task_created": IntakeRequestTaskCreated,
    "intake_request.refused": IntakeRequestRefused,
    "intake_request.replied": IntakeRequestReplied,
}
