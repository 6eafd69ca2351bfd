"""Errors of the /api/v1 family: `{"error": code, "message": text}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

import eventsourcing.persistence
import psycopg
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

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


def _detail(error: dict[str, Any]) -> str:
    message = str(error.get("message", error))
    # A query, path or header parameter is named (`limit: Expected `int` <= 200`); a body's
    # messages already say where (`at `$.tasks[0]``).
    source = str(getattr(error.get("source"), "value", error.get("source")))
    return f"{error['key']}: {message}" if error.get("key") and source in PARAMETER_SOURCES else message


def on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, str]]:
    code = {400: "invalid_request", 404: "Not found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "http_error"
    )
    return error_response(exc.status_code, code, str(exc.detail))


# Seconds a client is asked to wait before trying again while the database is away.
RETRY_AFTER_S = 2


def on_unavailable(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    """PostgreSQL cannot be reached (down, restarting, out of connections), or the read models
    are being rebuilt (their tables dropped for a moment): the request was fine and changed
    nothing, so the client hears to try again, not that something broke. Logged without a
    traceback: an outage would otherwise write one per request."""
    log.warning("the database cannot serve this request: %s: %s", type(exc).__name__, exc)
    response = error_response(503, "service_unavailable", "the database cannot be reached at the moment; try again")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    ValidationException: on_validation,
    HTTPException: on_http,
    # psycopg's, with its pool's PoolTimeout; the event store's (eventsourcing) after its retries
    psycopg.OperationalError: on_unavailable,
    psycopg.errors.UndefinedTable: on_unavailable,
    eventsourcing.persistence.OperationalError: on_unavailable,
    eventsourcing.persistence.InterfaceError: on_unavailable,
    Exception: on_unexpected,
}
