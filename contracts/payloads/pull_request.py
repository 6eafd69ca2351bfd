"""The payloads of a PullRequest's events (owner: the executor): `pull_request.<event>` on the wire."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class PullRequestOpened(Payload, frozen=True, kw_only=True):
    task_id: str
    url: str
    number: int


class PullRequestSkipped(Payload, frozen=True, kw_only=True):
    task_id: str
    reason: str


class PullRequestFailed(Payload, frozen=True, kw_only=True):
    task_id: str
    error: str  # GitHub's status and message; never the token


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "pull_request.opened": PullRequestOpened,
    "pull_request.skipped": PullRequestSkipped,
    "pull_request.failed": PullRequestFailed,
}
