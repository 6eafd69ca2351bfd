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

from contracts.agent_runtime import Diagnostic, DiagnosticError
from libs.web.errors import HANDLERS, ApiError

AGENT_PREFIX = "/api/agent/"
DOC_URL = "docs/agent-runtime.md#6-errors"

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


def envelope(status: int, code: str, message: str, exc: Exception | None = None) -> DiagnosticError:
    category, title = _CATEGORIES.get(status, ("internal", "Something went wrong"))
    extra = exc if isinstance(exc, AgentError) else None
    return DiagnosticError(
        diagnostic=Diagnostic(
            category=(extra.category if extra and extra.category else category),
            code=code,
            data_freshness="live",
            doc_url=DOC_URL,
            evidence=extra.evidence if extra else {},
            id=f"diag_{uuid.uuid4().hex}",
            message=message,
            severity="error",
            suggested_command=extra.suggested_command if extra else None,
            title=title,
        ),
        error=message,
    )


def _in_family(handler: Callable[[Request[Any, Any, Any], Any], Response[Any]]) -> Callable[..., Response[Any]]:
    def handle(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        response = handler(request, exc)
        if not request.url.path.startswith(AGENT_PREFIX):
            return response
        body = response.content
        code, message = body.get("error", "error"), body.get("message", "")
        return Response(
            msgspec.to_builtins(envelope(response.status_code, code, message, exc)),
            status_code=response.status_code,
            headers=dict(response.headers),
        )

    return handle


HANDLERS_WITH_DIAGNOSTICS: dict[Any, Any] = {kind: _in_family(handler) for kind, handler in HANDLERS.items()}
