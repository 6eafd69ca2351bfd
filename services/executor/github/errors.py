"""GitHub's errors in words: GitHub's own message, and a clear, token-free sentence for the
failed pull request."""

from __future__ import annotations

from typing import Any

import pydantic
from githubkit import GitHub
from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed, RequestTimeout

from libs.observability.logs import redact


class UnexpectedAnswer(GitHubException):
    """GitHub answered 2xx with a body that is not what its API documents."""


def github_message(exc: RequestFailed) -> str:
    """GitHub's own words from an error body: its message and each error's detail."""
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.raw_response.text[:200]
    if not isinstance(body, dict):
        return str(body)[:200]
    details = [detail_text(error) for error in body.get("errors") or [] if isinstance(error, dict)]
    return "; ".join(part for part in [str(body.get("message", "")), *details] if part)


def detail_text(error: dict[str, Any]) -> str:
    if error.get("message"):
        return str(error["message"])
    return " ".join(str(error[key]) for key in ("resource", "field", "code") if error.get(key))


def describe(exc: Exception, github: GitHub[Any]) -> str:
    """A clear, token-free sentence for a failed GitHub call."""
    where = f"{github.config.base_url.scheme}://{github.config.base_url.netloc.decode()}"
    if isinstance(exc, RequestFailed):
        request = f"{exc.request.method} {exc.request.url.path}"
        text = f"GitHub answered {exc.response.status_code} to {request}: {github_message(exc)}"
        if isinstance(exc, RateLimitExceeded):
            text += f" (rate limited; retry after {int(exc.retry_after.total_seconds())} s)"
    elif isinstance(exc, RequestTimeout):
        text = f"GitHub at {where} did not answer {exc.request.method} {exc.request.url.path} in time"
    elif isinstance(exc, RequestError):
        text = f"GitHub at {where} could not be reached: {str(exc.exc) or type(exc.exc).__name__}"
    elif isinstance(exc, UnexpectedAnswer | pydantic.ValidationError):
        text = f"GitHub at {where} answered in an unexpected shape: {first_lines(str(exc))}"
    else:
        text = f"GitHub call failed: {type(exc).__name__}"
    return redact(text, credentials(github))


def first_lines(text: str, count: int = 3) -> str:
    return " / ".join(text.splitlines()[:count])


def credentials(github: GitHub[Any]) -> list[str]:
    token = getattr(github.auth, "token", None)
    return [token] if isinstance(token, str) and token else []
