"""Errors of the /api/v1 family: `{"error": code, "message": text}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import eventsourcing.persistence
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from libs.domain.errors import EventTooLarge

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> Response[dict[str, str]]:
    return Response({"error": code, "message": message}, status_code=status)


def on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, str]]:
    return error_response(exc.status, exc.code, exc.message)


def on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, str]]:
    details = "; ".join(_detail(e) for e in (exc.extra or []) if isinstance(e, dict))
    return error_response(400, "invalid_request", details or str(exc.detail))


PARAMETER_SOURCES = {"query", "path", "header", "cookie"}


EMPTY_BODY = "the request body is empty: send a JSON object"


def _detail(error: dict[str, Any]) -> str:
    message = str(error.get("message", error))
    if error.get("key") == "data" and message == "'data'":
        return EMPTY_BODY  # Litestar's word (a KeyError) for a body route called without one
    # A query, path or header parameter is named (`limit: Expected `int` <= 200`); a body's
    # messages already say where (`at `$.tasks[0]``).
    source = str(getattr(error.get("source"), "value", error.get("source")))
    return f"{error['key']}: {message}" if error.get("key") and source in PARAMETER_SOURCES else message


def on_too_large(_: Request[Any, Any, Any], exc: EventTooLarge) -> Response[dict[str, str]]:
    return error_response(413, exc.code, str(exc))


def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    code = {400: "invalid_request", 404: "Not found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, code, str(exc.detail))


# Seconds a client is asked to wait before trying again while the database is away.
RETRY_AFTER_S = 2
# SQLSTATE classes and codes that say the server cannot serve now, not that the request or the
# code is wrong: connection exceptions, insufficient resources (too many connections, disk,
# memory), shutdown or start-up in progress. (A connection refused, or to a database that is not
# there, fails before any SQLSTATE: psycopg raises an OperationalError without one.)
_OUTAGE_CLASSES = ("08", "53")
_OUTAGE_CODES = frozenset({"57P01", "57P02", "57P03"})


def outage(exc: BaseException) -> bool:
    """Whether a database error means PostgreSQL cannot serve at the moment (the client should
    try again), rather than a bug; the event store's errors are judged by the psycopg error
    they wrap. A read model's table missing counts: a rebuild drops and recreates them."""
    error = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    if isinstance(error, psycopg.errors.UndefinedTable):
        return '"rm_' in str(error)
    if not isinstance(error, psycopg.OperationalError):
        return False
    # No SQLSTATE: the connection failed or broke (the pool's PoolTimeout is one of these).
    code = error.sqlstate
    return code is None or code[:2] in _OUTAGE_CLASSES or code in _OUTAGE_CODES


def on_database_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """An outage is a 503 with Retry-After, logged in one line (an outage would otherwise write a
    traceback per request); any other database error is a bug, and a 500 like one."""
    if not outage(exc):
        return on_unexpected(request, exc)
    log.warning("the database cannot serve this request: %s: %s", type(exc).__name__, exc)
    response = error_response(503, "service_unavailable", "the database cannot be reached at the moment; try again")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


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
