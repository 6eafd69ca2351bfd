"""Errors of the /api/v1 family: `{"error": code, "message": text}`, never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

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


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, str]]:
    log.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error occurred")


HANDLERS: dict[Any, Any] = {
    ApiError: on_api_error,
    ValidationException: on_validation,
    HTTPException: on_http,
    Exception: on_unexpected,
}
