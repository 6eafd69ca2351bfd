"""What every part of the local GitHub server shares: GitHub's error, its clock, and the account
the configured token belongs to."""

from __future__ import annotations

from datetime import UTC, datetime

# The account the configured token belongs to: author of commits and pull requests made with it.
LOGIN = "agent-orchestrator"
EMAIL = "agent-orchestrator@users.noreply.localhost"


class GitHubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = headers or {}


def not_found() -> GitHubError:
    return GitHubError(404, "Not Found")


def now() -> datetime:
    # GitHub's timestamps have whole seconds.
    return datetime.now(UTC).replace(microsecond=0)
