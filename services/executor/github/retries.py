"""When a GitHub call is tried again: in the call, by githubkit (a server error; a rate limit
that lifts within seconds), or later, by handing the approval back (`TryLater`), while the error
may pass and the approval is recent enough."""

from __future__ import annotations

from datetime import timedelta

from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed, RequestTimeout
from githubkit.retry import RetryRateLimit, RetryServerError
from githubkit.typing import RetryOption

# A rate limit is waited out in the call only when it lifts within seconds; a longer one, like
# GitHub being away (5xx after githubkit's retries, a timeout, no connection), sends the
# approval back to be tried again later (`TryLater`), for up to RETRY_WINDOW_S after it.
LONGEST_RATE_LIMIT_WAIT = timedelta(seconds=10)
RETRY_WINDOW_S = 3600
SERVER_ERROR_RETRIES = 2

_retry_server_error = RetryServerError(SERVER_ERROR_RETRIES)
_retry_rate_limit = RetryRateLimit(1)


def retry_decision(exc: GitHubException, retry_count: int) -> RetryOption:
    option = _retry_server_error(exc, retry_count)
    if option.do_retry:
        return option
    option = _retry_rate_limit(exc, retry_count)
    if option.do_retry and option.retry_after is not None and option.retry_after <= LONGEST_RATE_LIMIT_WAIT:
        return option
    return RetryOption(False)


def passes(exc: Exception) -> tuple[bool, float | None]:
    """Whether a GitHub error may pass if the publish is tried again later, and when to (None:
    the consumer's own retry delay): a rate limit (at its reset), a server error, a timeout, or
    no connection. A refusal (a wrong token, a missing branch) or an answer of the wrong shape
    would only come again."""
    if isinstance(exc, RateLimitExceeded):
        return True, max(1.0, exc.retry_after.total_seconds())
    if isinstance(exc, RequestFailed):
        return exc.response.status_code >= 500, None
    return isinstance(exc, RequestTimeout | RequestError), None
