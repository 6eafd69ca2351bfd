"""Health, readiness and metrics routes for the Litestar services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.handlers import BaseRouteHandler
from litestar.handlers.asgi_handlers import asgi
from litestar.middleware.base import DefineMiddleware
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import make_asgi_app

VERSION = "0.1.0"

_metrics_app = make_asgi_app()


@asgi("/metrics", is_mount=True, include_in_schema=False, copy_scope=True, opt={"public": True})
async def metrics(scope: Any, receive: Any, send: Any) -> None:
    await _metrics_app(scope, receive, send)


def ready_route(check: Callable[[Request[Any, Any, Any]], Awaitable[bool]]) -> BaseRouteHandler:
    @get("/ready", include_in_schema=False, opt={"public": True})
    async def ready(request: Request[Any, Any, Any]) -> Response[dict[str, bool]]:
        ok = await check(request)
        return Response({"ready": ok}, status_code=200 if ok else 503)

    return ready


def request_metrics(service: str) -> DefineMiddleware:
    """Litestar's Prometheus middleware for the HTTP edge: `orchestrator_http_requests_total`,
    `..._request_duration_seconds`, `..._requests_in_progress` and `..._requests_error_total`
    (5xx), by method, route and status. The `path` label is the route's template
    (`/tasks/{task_id}`), never the path asked for: task and workspace ids are not for
    whoever scrapes /metrics, and one series per id would grow without bound. A path that
    matches no route is not counted. An SSE stream's duration is its whole life; the live-log
    WebSockets have their own gauge."""
    return PrometheusConfig(
        app_name=service,
        prefix="orchestrator_http",
        group_path=True,
        scopes={ScopeType.HTTP},
        exclude=["^/metrics"],
    ).middleware
