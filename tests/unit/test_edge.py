"""The gateway's edge forwards a service's routes as a client would see the service itself: the
status, headers and body as written, an SSE frame the moment it is sent, the query and
`Last-Event-ID` passed on, a large body whole, a client's departure closing the request
upstream; and a service that cannot be reached is a 503 (a 502 when it breaks off, a 504 when
it does not answer in time) in the family's error body, never a 500. The services here are
small apps served in threads."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import threading
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import pytest
from litestar import Litestar, Request, Response, get, post
from litestar.params import FromPath, RawBody
from litestar.response import Stream

from libs.config import Settings
from libs.web.auth import require_key
from libs.web.errors import HANDLERS
from services.gateway.edge import STREAM_PATHS, Edge, Upstream, edge_of, request_headers, response_headers, target
from tests.servers import serve_in_thread

FEED = "/api/v1/workspaces/default/orchestration/events"


class Seen:
    """What the fake services saw, and the switch that lets the feed's second frame go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = threading.Event()
        self.seen: dict[str, Any] = {}


def upstream_app(state: Seen) -> Litestar:
    @get("/api/v1/workspaces/{workspaceID:str}/orchestration/events")
    async def events(request: Request[Any, Any, Any], workspaceID: FromPath[str]) -> Stream:
        state.seen["feed"] = {
            "last_event_id": request.headers.get("last-event-id"),
            "query": request.url.query,
            "authorization": request.headers.get("authorization"),
            "workspace": workspaceID,
        }

        async def frames() -> AsyncGenerator[bytes, None]:
            try:
                yield b"id: 1\nevent: first\ndata: {}\n\n"
                # Set from the test's thread, which an asyncio.Event of this loop cannot be.
                while not state.release.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                yield b"id: 2\nevent: second\ndata: {}\n\n"
            finally:
                state.closed.set()

        return Stream(frames(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})

    @post("/api/agent/echo/{rest:path}", sync_to_thread=False)
    def echo(request: Request[Any, Any, Any], body: RawBody, rest: FromPath[str]) -> Response[dict[str, Any]]:
        state.seen["echo"] = dict(request.headers)
        return Response(
            {
                "rest": rest,
                "query": request.url.query,
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "contentLength": request.headers.get("content-length"),
            },
            status_code=418,
            headers={"X-Upstream": "runtime"},
        )

    return Litestar(route_handlers=[events, echo], request_max_body_size=None)


def gateway_app(settings: Settings) -> Litestar:
    """The edge as the gateway installs it: behind the gateway's own guard and error handlers."""
    edge = edge_of(settings)
    return Litestar(
        route_handlers=edge.routes, lifespan=[edge.lifespan], guards=[require_key], exception_handlers=HANDLERS
    )


@pytest.fixture(scope="module")
def services() -> Iterator[tuple[Seen, str]]:
    state = Seen()
    with serve_in_thread(upstream_app(state)) as upstream:
        settings = Settings(
            service="gateway", database_url="postgresql://unused", stream_url=upstream, runtime_url=upstream
        )
        with serve_in_thread(gateway_app(settings)) as gateway:
            yield state, gateway


def test_an_sse_frame_arrives_while_the_service_is_still_sending(services: tuple[Seen, str]) -> None:
    state, gateway = services
    state.release.clear()
    state.closed.clear()
    headers = {"Authorization": "Bearer k", "Last-Event-ID": "41"}

    with httpx.stream("GET", f"{gateway}{FEED}?since_seq=40&x=%2F", headers=headers, timeout=10) as response:
        lines = response.iter_lines()
        first = [next(lines) for _ in range(3)]
        # The service has not finished (it waits for `release`): the frame came through unbuffered.
        assert not state.closed.is_set()
        state.release.set()
        second = [next(lines) for _ in range(4)]

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert first == ["id: 1", "event: first", "data: {}"]
    assert second == ["", "id: 2", "event: second", "data: {}"]
    assert state.seen["feed"] == {
        "last_event_id": "41",
        "query": "since_seq=40&x=%2F",
        "authorization": "Bearer k",
        "workspace": "default",
    }


def test_a_client_that_leaves_closes_the_request_upstream(services: tuple[Seen, str]) -> None:
    state, gateway = services
    state.release.clear()
    state.closed.clear()

    with httpx.stream("GET", f"{gateway}{FEED}", timeout=10) as response:
        assert next(response.iter_lines()) == "id: 1"

    # The feed never got `release`: only the client's departure, passed on, ended it.
    assert state.closed.wait(5), "the service's feed is still open after the client left"


def test_status_headers_and_a_large_body_go_through_as_written(services: tuple[Seen, str]) -> None:
    state, gateway = services
    body = bytes(range(256)) * 12_000  # 3 MB: it reaches the gateway in many pieces

    answer = httpx.post(
        f"{gateway}/api/agent/echo/a%20b?limit=2",
        content=body,
        headers={"Authorization": "Bearer ags_x", "Content-Type": "application/octet-stream", "Cookie": "s=1"},
        timeout=30,
    )

    assert answer.status_code == 418
    assert answer.headers["x-upstream"] == "runtime"
    assert answer.json() == {
        "rest": "/a b",
        "query": "limit=2",
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "contentLength": str(len(body)),
    }
    seen = state.seen["echo"]
    assert seen["authorization"] == "Bearer ags_x"
    assert seen["content-type"] == "application/octet-stream"
    assert "cookie" not in seen, "the sign-in cookie stays at the gateway"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert seen["x-forwarded-host"] == gateway.removeprefix("http://")
    assert "user-agent" in seen and seen["user-agent"].startswith("python-httpx"), "the client's own"


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def hanging_up(answer: bool) -> Iterator[str]:
    """A server that reads each request and closes the connection without a word (`answer`), or
    keeps it open without one."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                conn, _ = listener.accept()
                conn.recv(65536)
                if answer:
                    conn.close()
                else:
                    held.append(conn)
        for conn in held:
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def test_a_service_that_cannot_be_reached_is_a_503_in_the_familys_body() -> None:
    away = f"http://127.0.0.1:{refused_port()}"
    settings = Settings(service="gateway", database_url="postgresql://unused", stream_url=away, runtime_url=away)

    with serve_in_thread(gateway_app(settings)) as gateway:
        feed = httpx.get(f"{gateway}{FEED}", timeout=10)
        agent = httpx.get(f"{gateway}/api/agent/me", timeout=10)
        sessions = httpx.post(f"{gateway}/api/v1/workspaces/default/agent-sessions", json={}, timeout=10)

    assert feed.status_code == 503
    assert feed.json() == {
        "error": "service_unavailable",
        "message": "the stream service cannot be reached now: try again shortly",
    }
    assert feed.headers["retry-after"] == "2"
    # Spec 002's routes keep their diagnostic envelope; the workspace's routes theirs.
    assert agent.status_code == 503
    assert set(agent.json()) == {"diagnostic", "error"}
    assert agent.json()["diagnostic"]["code"] == "service_unavailable"
    assert agent.json()["diagnostic"]["category"] == "unavailable"
    assert sessions.status_code == 503
    assert sessions.json()["error"] == "service_unavailable"


def test_a_service_that_hangs_up_is_a_502() -> None:
    with hanging_up(answer=True) as rude:
        settings = Settings(service="gateway", database_url="postgresql://unused", stream_url=rude)
        with serve_in_thread(gateway_app(settings)) as gateway:
            answer = httpx.get(f"{gateway}{FEED}", timeout=10)

    assert answer.status_code == 502
    assert answer.json() == {"error": "bad_gateway", "message": "the stream service broke off before answering"}


def test_a_service_that_does_not_answer_in_time_is_a_504() -> None:
    with hanging_up(answer=False) as silent:
        edge = Edge([Upstream("stream", silent, STREAM_PATHS, read_timeout_s=0.5)])
        app = Litestar(route_handlers=edge.routes, lifespan=[edge.lifespan], exception_handlers=HANDLERS)
        with serve_in_thread(app) as gateway:
            answer = httpx.get(f"{gateway}{FEED}", timeout=10)

    assert answer.status_code == 504
    assert answer.json() == {"error": "gateway_timeout", "message": "the stream service did not answer within 0.5 s"}


def test_hop_by_hop_headers_stay_on_their_hop() -> None:
    scope = {
        "headers": [
            (b"host", b"gw:8080"),
            (b"connection", b"keep-alive, X-Secret-Hop"),
            (b"x-secret-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"transfer-encoding", b"chunked"),
            (b"content-length", b"12"),
            (b"te", b"trailers"),
            (b"upgrade", b"h2c"),
            (b"expect", b"100-continue"),
            (b"cookie", b"orchestrator_session=secret"),
            (b"authorization", b"Bearer k"),
            (b"last-event-id", b"7"),
            (b"x-forwarded-for", b"10.0.0.1"),
            (b"accept", b"text/event-stream"),
        ],
        "client": ("10.0.0.2", 5555),
        "scheme": "https",
    }

    sent = request_headers(scope)  # type: ignore[arg-type]

    assert sent == [
        ("authorization", "Bearer k"),
        ("last-event-id", "7"),
        ("accept", "text/event-stream"),
        ("X-Forwarded-For", "10.0.0.1, 10.0.0.2"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "gw:8080"),
    ]
    back = response_headers(
        [
            (b"Content-Type", b"text/event-stream"),
            (b"Transfer-Encoding", b"chunked"),
            (b"Connection", b"close"),
            (b"Date", b"Mon, 01 Jan 2026 00:00:00 GMT"),
            (b"Server", b"uvicorn"),
            (b"Retry-After", b"2"),
            (b"Set-Cookie", b"a=1"),
            (b"Set-Cookie", b"b=2"),
        ]
    )
    assert back == [
        (b"content-type", b"text/event-stream"),
        (b"retry-after", b"2"),
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
    ]


def test_the_path_and_query_go_up_as_the_client_wrote_them() -> None:
    scope = {"path": "/api/agent/a b", "raw_path": b"/api/agent/a%20b", "query_string": b"q=%2F&x=1"}

    assert target(scope) == "/api/agent/a%20b?q=%2F&x=1"  # type: ignore[arg-type]
    assert target({"path": "/api/agent/me", "query_string": b""}) == "/api/agent/me"  # type: ignore[arg-type]
