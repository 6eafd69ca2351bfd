"""Errors of the agent runtime family (spec 002, `/api/agent/*`): `{"diagnostic": {...}, "error":
message}`. One set of handlers for a service that serves several families: each error is worked
out once by the `/api/v1` handlers (`libs.web.errors.HANDLERS`), and a request under
`AGENT_PREFIX` gets it in the diagnostic envelope instead, with the same status and headers.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import ValidationException

from contracts.agent_runtime import Diagnostic, DiagnosticError
from libs.web.errors import HANDLERS, PARAMETER_SOURCES, ApiError

AGENT_PREFIX = "/api/agent/"
DOC_URL = "docs/agent-runtime.md#6-errors"
# A route's `opt` key: the command its diagnostic suggests for a request it refuses as not valid.
SUGGESTED_COMMAND = "suggested_command"

# By status: the kind of problem, and a title a person can scan.
_CATEGORIES = {
    400: ("validation", "The request is not valid"),
    401: ("auth", "Not authenticated"),
    403: ("auth", "Not allowed"),
    404: ("not_found", "Not found"),
    405: ("validation", "Method not allowed"),
    409: ("conflict", "Conflict"),
    410: ("lease", "Gone"),
    413: ("validation", "Too large"),
    426: ("validation", "Upgrade required"),
    429: ("limit", "Too many"),
    503: ("unavailable", "Try again shortly"),
}


class AgentError(ApiError):
    """An error with what a diagnostic adds: the facts behind it and, where one helps, what to
    do next (`suggested_command`)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        category: str | None = None,
        evidence: dict[str, Any] | None = None,
        suggested_command: str | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.category = category
        self.evidence = evidence or {}
        self.suggested_command = suggested_command


def envelope(
    status: int, code: str, message: str, exc: Exception | None = None, suggested_command: str | None = None
) -> DiagnosticError:
    category, title = _CATEGORIES.get(status, ("internal", "Something went wrong"))
    extra = exc if isinstance(exc, AgentError) else None
    evidence = extra.evidence if extra else _refused_parameters(exc) if isinstance(exc, ValidationException) else {}
    return DiagnosticError(
        diagnostic=Diagnostic(
            category=(extra.category if extra and extra.category else category),
            code=code,
            data_freshness="live",
            doc_url=DOC_URL,
            evidence=evidence,
            id=f"diag_{uuid.uuid4().hex}",
            message=message,
            severity="error",
            suggested_command=extra.suggested_command if extra else suggested_command,
            title=title,
        ),
        error=message,
    )


def _refused_parameters(exc: ValidationException) -> dict[str, Any]:
    """The query, path and header parameters Litestar refused, each with what was wrong."""
    refused: dict[str, dict[str, str]] = {}
    for error in exc.extra if isinstance(exc.extra, list) else []:
        source = str(getattr(error.get("source"), "value", error.get("source"))) if isinstance(error, dict) else ""
        if source in PARAMETER_SOURCES and error.get("key"):
            refused[str(error["key"])] = {"in": source, "problem": str(error.get("message", ""))}
    return {"parameters": refused} if refused else {}


def _in_family(handler: Callable[[Request[Any, Any, Any], Any], Response[Any]]) -> Callable[..., Response[Any]]:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        if not request.url.path.startswith(AGENT_PREFIX):
            return response
        body = response.content
        code, message = body.get("error", "error"), body.get("message", "")
        # A route may say what to send instead of a request it refuses as not valid.
        suggested = _route_opt(request).get(SUGGESTED_COMMAND) if isinstance(exc, ValidationException) else None
        return Response(
            msgspec.to_builtins(envelope(response.status_code, code, message, exc, suggested)),
            status_code=response.status_code,
            headers=dict(response.headers),
        )

    return handle


def _route_opt(request: Request[Any, Any, Any]) -> dict[str, Any]:
    handler = request.scope.get("route_handler")
    return handler.opt if handler is not None else {}


HANDLERS_WITH_DIAGNOSTICS: dict[Any, Any] = {kind: _in_family(handler) for kind, handler in HANDLERS.items()}
