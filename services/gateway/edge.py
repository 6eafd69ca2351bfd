"""One base URL: the gateway forwards the stream service's and the runtime's routes to them.

Told where they are (`STREAM_URL`, `RUNTIME_URL`; `./just up`, compose and the tests' stack set
both), the gateway answers every public route of the product on its own URL. The events feed,
its connection count, the tool call log's stream and the debug dump go to the stream service;
spec 002's `/api/agent/...` and a workspace's agent sessions and souls go to the runtime. Behind
the Kubernetes ingress neither is set: the ingress routes the same paths itself
(`deploy/k8s/ingress.yaml`; `tests/unit/test_edge_routes.py` holds both to the services' routes).

Forwarding is transparent, so an answer is the same on either URL: the method, path, query, body
and end-to-end headers go up as they came (not the hop-by-hop ones, nor the sign-in cookie: these
families take bearer credentials only), and the answer comes back as the service wrote it
(status, headers, body) a chunk at a time as it arrives, so an SSE frame reaches the client when
the service sends it. The gateway checks nothing itself: each service authenticates and
validates its own routes. A client that goes away closes the request upstream (the feed's
connection count drops at once). A service that cannot be reached is a 503 (504 when it does not
answer in time, 502 when its answer breaks off before it starts) in the family's error body.

These are Litestar HTTP routes that hand the exchange to an ASGI app of their own, registered only
when an upstream is configured: the router refuses, at start, a path and method the gateway
serves itself; the gateway's own routes pay nothing for them; and they stay out of the gateway's
OpenAPI document (each service documents its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence

import aiohttp
import msgspec
from litestar import HttpMethod, Litestar, route
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send
from yarl import URL

from libs.config import Settings
from libs.web.diagnostics import HANDLERS_WITH_DIAGNOSTICS
from libs.web.errors import HANDLERS, ApiError

log = logging.getLogger(__name__)

ORCHESTRATION = "/api/v1/workspaces/{workspaceID:str}/orchestration"
WORKSPACE = "/api/v1/workspaces/{workspaceID:str}"
# The stream service's routes (spec 001's feed, its count, the tool log's stream, the dump).
STREAM_PATHS = (
    f"{ORCHESTRATION}/events",
    f"{ORCHESTRATION}/events/connections",
    f"{ORCHESTRATION}/log/stream",
    f"{ORCHESTRATION}/debug-dump",
)
# The runtime's (spec 002): all of /api/agent/, and what a workspace's key does with sessions and souls.
RUNTIME_PATHS = (
    "/api/agent/{path:path}",
    f"{WORKSPACE}/agent-sessions",
    f"{WORKSPACE}/agent-sessions/{{path:path}}",
    f"{WORKSPACE}/agent-souls/{{path:path}}",
)
# HEAD and OPTIONS are left to the router, as each service's own router answers them.
METHODS = [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.PATCH, HttpMethod.DELETE]
CONNECT_S = 5.0
# How long a forwarded request may wait for the service's next bytes, as the ingress allows: an
# idle feed sends a keep-alive every 15 s; the runtime's longest wait (a complete) is 90 s.
STREAM_READ_S = 3600.0
RUNTIME_READ_S = 120.0

# RFC 9110 7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
# `host` is the service's own; the length is the body's as sent; the cookie stays at the gateway.
NOT_UP = HOP_BY_HOP | {b"host", b"content-length", b"expect", b"cookie"}
# The gateway's server adds its own `date` and `server`: the service's would be sent twice.
NOT_DOWN = HOP_BY_HOP | {b"date", b"server"}


class Upstream(msgspec.Struct, frozen=True):
    name: str  # as the errors name it: "stream", "runtime"
    url: str  # the service's base URL, no trailing slash
    paths: tuple[str, ...]
    read_timeout_s: float


def upstreams(settings: Settings) -> list[Upstream]:
    found = [
        Upstream("stream", settings.stream_url, STREAM_PATHS, STREAM_READ_S) if settings.stream_url else None,
        Upstream("runtime", settings.runtime_url, RUNTIME_PATHS, RUNTIME_READ_S) if settings.runtime_url else None,
    ]
    return [msgspec.structs.replace(u, url=u.url.rstrip("/")) for u in found if u is not None]


def _dropped(headers: Sequence[tuple[bytes, bytes]], never: frozenset[bytes]) -> frozenset[bytes]:
    """`never`, and the headers a `Connection` header names as this hop's own."""
    named = {
        token.strip().lower() for name, value in headers if name.lower() == b"connection" for token in value.split(b",")
    }
    return never | named


def request_headers(scope: Scope) -> list[tuple[str, str]]:
    """The client's headers as the service is sent them, with the usual `X-Forwarded-*`."""
    raw: list[tuple[bytes, bytes]] = list(scope["headers"])
    drop = _dropped(raw, NOT_UP)
    kept = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in raw if n.lower() not in drop]
    client = scope.get("client")
    if client:
        before = ", ".join(v.decode("latin-1") for n, v in raw if n.lower() == b"x-forwarded-for")
        kept = [(n, v) for n, v in kept if n.lower() != "x-forwarded-for"]
        kept.append(("X-Forwarded-For", f"{before}, {client[0]}" if before else client[0]))
    if not any(n.lower() == "x-forwarded-proto" for n, _ in kept):
        kept.append(("X-Forwarded-Proto", scope.get("scheme", "http")))
    host = next((v for n, v in raw if n.lower() == b"host"), None)
    if host is not None and not any(n.lower() == "x-forwarded-host" for n, _ in kept):
        kept.append(("X-Forwarded-Host", host.decode("latin-1")))
    return kept


def response_headers(raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    drop = _dropped(raw, NOT_DOWN)
    return [(n.lower(), v) for n, v in raw if n.lower() not in drop]


def target(scope: Scope) -> str:
    """The path and query as the client wrote them (percent-encoding kept)."""
    path: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string", b"")
    return (path + (b"?" + query if query else b"")).decode("latin-1")


class Edge:
    """The forwarding routes and the one client session they share (opened by `lifespan`)."""

    def __init__(self, targets: Sequence[Upstream]) -> None:
        self.targets = list(targets)
        self._session: aiohttp.ClientSession | None = None
        self.routes = [self._route(upstream) for upstream in self.targets]

    @contextlib.asynccontextmanager
    async def lifespan(self, _: Litestar) -> AsyncIterator[None]:
        if not self.targets:
            yield
            return
        self._session = aiohttp.ClientSession(
            # A feed's client holds its connection for hours: no cap on the pool.
            connector=aiohttp.TCPConnector(limit=0),
            # One session for every client: it must keep nobody's cookies.
            cookie_jar=aiohttp.DummyCookieJar(),
            # The body goes back as the service encoded it, its Content-Length still true.
            auto_decompress=False,
            # Only what the client sent: no default Accept, Accept-Encoding or User-Agent added.
            skip_auto_headers=("Accept", "Accept-Encoding", "User-Agent"),
        )
        try:
            yield
        finally:
            await self._session.close()

    def _route(self, upstream: Upstream) -> HTTPRouteHandler:
        async def forwarded(scope: Scope, receive: Receive, send: Send) -> None:
            assert self._session is not None, "the edge's lifespan opens its session"
            await _forward(self._session, upstream, scope, receive, send)

        # An HTTP route that hands the exchange to an ASGI app of its own: Litestar's router
        # parses its path parameters (its ASGI routes take none over HTTP), and the body is
        # left unread for `forwarded` to stream.
        async def forward() -> ASGIApp:
            return forwarded

        return route(
            list(upstream.paths),
            http_method=METHODS,
            name=f"edge-{upstream.name}",
            # Each service authenticates its own routes; the gateway's guard lets these pass.
            opt={"public": True},
            # The service's own document describes them; this one describes the gateway's.
            include_in_schema=False,
            # A refusal of the gateway's own (the service away) in the family's body: spec 002's
            # diagnostic under /api/agent/, `{"error", "message"}` elsewhere.
            exception_handlers=HANDLERS_WITH_DIAGNOSTICS if upstream.name == "runtime" else HANDLERS,
        )(forward)


def edge_of(settings: Settings) -> Edge:
    return Edge(upstreams(settings))


async def _forward(
    session: aiohttp.ClientSession, upstream: Upstream, scope: Scope, receive: Receive, send: Send
) -> None:
    first = await receive()
    if first["type"] == "http.disconnect":
        return
    headers = request_headers(scope)
    body_read = asyncio.Event()
    data: bytes | AsyncGenerator[bytes, None] | None
    if first.get("more_body"):
        # A body in several pieces goes up as it comes; its length, when the client gave one, too.
        data = _rest_of_body(first.get("body", b""), receive, body_read)
        length = next((v for n, v in scope["headers"] if n.lower() == b"content-length"), None)
        if length is not None:
            headers.append(("Content-Length", length.decode("latin-1")))
    else:
        data = first.get("body") or None
        body_read.set()
    exchange = asyncio.ensure_future(_exchange(session, upstream, scope, headers, data, send))
    gone = asyncio.ensure_future(_client_gone(receive, body_read))
    try:
        await asyncio.wait({exchange, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        # The client went away (or the server stops): the request upstream ends with it.
        gone.cancel()
        if not exchange.done():
            exchange.cancel()
        await asyncio.gather(exchange, gone, return_exceptions=True)
    if not exchange.cancelled():
        exchange.result()  # an ApiError: the service could not be asked, and nothing was sent yet


async def _rest_of_body(first: bytes, receive: Receive, read: asyncio.Event) -> AsyncGenerator[bytes, None]:
    try:
        yield first
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            yield message.get("body", b"")
            if not message.get("more_body"):
                return
    finally:
        read.set()


async def _client_gone(receive: Receive, body_read: asyncio.Event) -> None:
    await body_read.wait()
    while (await receive())["type"] != "http.disconnect":
        pass


async def _exchange(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    scope: Scope,
    headers: list[tuple[str, str]],
    data: bytes | AsyncGenerator[bytes, None] | None,
    send: Send,
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_S, sock_read=upstream.read_timeout_s)
    try:
        response = await session.request(
            scope["method"],
            URL(upstream.url + target(scope), encoded=True),
            headers=headers,
            data=data,
            allow_redirects=False,
            timeout=timeout,
        )
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        log.warning("the %s service cannot be reached at %s: %s", upstream.name, upstream.url, exc)
        raise ApiError(
            503, "service_unavailable", f"the {upstream.name} service cannot be reached now: try again shortly"
        ) from None
    except aiohttp.SocketTimeoutError:
        raise ApiError(
            504,
            "gateway_timeout",
            f"the {upstream.name} service did not answer within {upstream.read_timeout_s:g} s",
        ) from None
    except aiohttp.ClientError as exc:
        log.warning(
            "the %s service broke off before answering %s %s: %r", upstream.name, scope["method"], scope["path"], exc
        )
        raise ApiError(502, "bad_gateway", f"the {upstream.name} service broke off before answering") from None
    try:
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": response_headers(response.raw_headers),
            }
        )
        try:
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except (aiohttp.ClientError, TimeoutError) as exc:
            # Returning without ending the answer makes the server close the client's connection:
            # the client sees the break the gateway saw, not an answer that looks whole.
            log.warning(
                "the %s service broke off its answer to %s %s: %r", upstream.name, scope["method"], scope["path"], exc
            )
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        # Read to its end, the connection goes back to the pool; cut off, it is closed.
        if response.content.at_eof():
            response.release()
        else:
            response.close()
