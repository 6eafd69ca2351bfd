"""`POST /api/webhooks/github`: the parts of a GitHub `issue_comment` delivery the gateway reads
(GitHub sends far more; the rest is passed over), and what the gateway answers GitHub."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from contracts.tasks import MAX_TEXT

# What an accepted delivery keeps of the issue's body: an event must fit on the bus, and the
# task's description quotes it.
MAX_ISSUE_BODY = 16_384
# GitHub's own limits are lower (a title: 256 characters; a comment: 65,536): a longer one is
# not GitHub's, and would not fit in an event.
MAX_TITLE = 1024


class Account(msgspec.Struct, frozen=True):
    login: str
    type: str = "User"


class Installation(msgspec.Struct, frozen=True):
    id: int


class Repository(msgspec.Struct, frozen=True):
    name: str
    owner: Account


class Issue(msgspec.Struct, frozen=True):
    number: int
    title: Annotated[str, msgspec.Meta(max_length=MAX_TITLE)]
    body: str | None = None
    # Set when the "issue" is a pull request (GitHub's issue comments cover both).
    pull_request: dict[str, Any] | None = None


class Comment(msgspec.Struct, frozen=True):
    id: int
    body: Annotated[str, msgspec.Meta(max_length=MAX_TEXT)]
    user: Account


class IssueCommentDelivery(msgspec.Struct, frozen=True):
    """An `issue_comment` event's body, as far as the intake needs it."""

    action: str
    issue: Issue
    comment: Comment
    repository: Repository
    installation: Installation | None = None


class WebhookAnswer(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`accepted` (queued for the intake, `deliveryId` names it), `ignored` (nothing done, and
    `reason` why) or `duplicate` (a delivery seen before: nothing done again)."""

    status: Literal["accepted", "ignored", "duplicate"]
    reason: str | None = None
    delivery_id: str | None = None
