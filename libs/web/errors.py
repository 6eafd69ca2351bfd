"""Errors of the /api/v1 family: `{"error": code, "message": text}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import eventsourcing.persistence
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from contracts.credentials import CREDENTIAL_PATTERN, CREDENTIAL_WORDS
from contracts.events import SEQ_PATTERN, SEQ_WORDS
from contracts.repos import PATTERN_WORDS
from libs.domain.errors import EventTooLarge
from libs.outage import OUTAGE_MESSAGE, outage

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[dict[str, str]]:
    response = Response({"error": code, "message": message}, status_code=status, headers=headers)
    if status == 503:
        # Every 503 is "not now" (the database or an owner is away): say when to ask again.
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
    elif status == 401:
        # HTTP requires a 401 to say how to authenticate (RFC 9110 11.6.1): a bearer key or token.
        response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


WWW_AUTHENTICATE = 'Bearer realm="agent-orchestrator"'


def on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, str]]:
    return error_response(exc.status, exc.code, exc.message)


def on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, str]]:
    details = "; ".join(_detail(e) for e in (exc.extra or []) if isinstance(e, dict))
    return error_response(400, "invalid_request", details or str(exc.detail))


PARAMETER_SOURCES = {"query", "path", "header", "cookie"}


EMPTY_BODY = "the request body is empty: send a JSON object"


# msgspec names the pattern a string failed by the pattern itself: where it is one of a
# repository's names, the message says what such a name may be instead.
_PATTERNS = {
    f"Expected `str` matching regex {pattern!r}": words
    for pattern, words in {**PATTERN_WORDS, SEQ_PATTERN: SEQ_WORDS, CREDENTIAL_PATTERN: CREDENTIAL_WORDS}.items()
}


def refused_pattern(name: str, pattern: str) -> ApiError:
    """The 400 for a value that does not match `pattern`, worded as Litestar's own refusals of
    a parameter are (for what a route checks itself)."""
    return ApiError(400, "invalid_request", f"{name}: {_readable(f'Expected `str` matching regex {pattern!r}')}")


def _readable(message: str) -> str:
    for regex, words in _PATTERNS.items():
        if message.startswith(regex):
            return f"Expected {words}{message[len(regex) :]}"
    return message


def _detail(error: dict[str, Any]) -> str:
    message = _readable(str(error.get("message", error)))
    if error.get("key") == "data" and message == "'data'":
        return EMPTY_BODY  # Litestar's word (a KeyError) for a body route called without one
    # A query, path or header parameter is named (`limit: Expected `int` <= 200`); a place in
    # the body as msgspec says it (`... - at `$.tasks[0].repo.owner``), which Litestar leaves
    # out of the message.
    source = str(getattr(error.get("source"), "value", error.get("source")))
    if not error.get("key"):
        return message
    return f"{error['key']}: {message}" if source in PARAMETER_SOURCES else f"{message} - at `$.{error['key']}`"


def on_too_large(_: Request[Any, Any, Any], exc: EventTooLarge) -> Response[dict[str, str]]:
    return error_response(413, exc.code, str(exc))


def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Litestar's router lists the path's handlers in `allow`, a WebSocket's as "websocket".
        methods = [m for m in headers.pop("allow", "").split(", ") if m and m != "websocket"]
        if not methods:
            # A WebSocket route asked over plain HTTP: it takes only an upgrade (RFC 9110 15.5.22).
            message = "this endpoint is a WebSocket: connect with Upgrade: websocket"
            return error_response(426, "upgrade_required", message, {"Upgrade": "websocket"})
        headers["Allow"] = ", ".join(methods)  # HTTP requires it on a 405
    code = {400: "invalid_request", 404: "Not found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, code, str(exc.detail), headers)


# Seconds a client is asked to wait before trying again while the database is away.
RETRY_AFTER_S = 2


def on_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """An outage is a 503 with Retry-After, logged in one line (an outage would otherwise write a
    traceback per request); any other database error is a bug, and a 500 like one."""
    if not outage(exc):
        return on_unexpected(request, exc)
    log.warning("the database cannot serve this request: %s: %s", type(exc).__name__, exc)
    return error_response(503, "service_unavailable", OUTAGE_MESSAGE)


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    EventTooLarge: on_too_large,
    ValidationException: on_validation,
    HTTPException: on_http,
    # psycopg's (its pool's PoolTimeout too), and the event store's once its own retries are over
    psycopg.Error: on_database_error,
    eventsourcing.persistence.PersistenceError: on_database_error,
    Exception: on_unexpected,
}
