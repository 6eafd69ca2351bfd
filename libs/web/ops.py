"""Health, readiness and metrics routes for the Litestar services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import BaseRouteHandler
from litestar.handlers.asgi_handlers import asgi
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
