"""Conditional requests and the primary rate limit, as GitHub keeps them, for every API call made
with a token: each answer to a GET carries an `ETag`; a GET whose `If-None-Match` names the
current one is answered `304 Not Modified` with no body, and, as GitHub documents, a 304 costs
nothing against the rate limit. Every other answer to a token's call counts one against that
token's hourly allowance, and every answer says where it stands (`X-RateLimit-*`).

An ASGI middleware, since only the finished body tells whether the ETag still matches. Tokens are
counted by their digest, so the counter never holds one.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

from libs.githubserver.state import RATE_LIMIT

WINDOW_S = 3600
# Control routes, the OAuth pages and GitHub's own `GET /rate_limit` cost nothing.
FREE_PREFIXES = ("/_", "/login", "/health")
FREE_PATHS = frozenset({"/rate_limit"})


def token_digest(authorization: str) -> str | None:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token.strip():
        return None
    return hashlib.sha256(token.strip().encode()).hexdigest()


@dataclass
class Allowance:
    used: int = 0
    reset: float = field(default_factory=lambda: time.time() + WINDOW_S)


class RateCounter:
    """Each token's calls this hour, by the token's digest."""

    def __init__(self) -> None:
        self.allowances: dict[str, Allowance] = {}

    def of(self, digest: str) -> Allowance:
        found = self.allowances.get(digest)
        if found is None or found.reset <= time.time():
            found = self.allowances[digest] = Allowance()
        return found

    def headers(self, digest: str, already: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The `X-RateLimit-*` headers, unless the answer has its own (a call refused as over it)."""
        if any(key.lower().startswith(b"x-ratelimit-") for key, _ in already):
            return []
        allowance = self.of(digest)
        return [
            (b"x-ratelimit-limit", str(RATE_LIMIT).encode()),
            (b"x-ratelimit-remaining", str(max(RATE_LIMIT - allowance.used, 0)).encode()),
            (b"x-ratelimit-used", str(allowance.used).encode()),
            (b"x-ratelimit-reset", str(math.ceil(allowance.reset)).encode()),
            (b"x-ratelimit-resource", b"core"),
        ]

    def reset(self) -> None:
        self.allowances.clear()


def etag_of(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest() + '"'


def matches(if_none_match: str, etag: str) -> bool:
    # GitHub compares weakly: `W/"x"` and `"x"` name the same representation.
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return ""


def conditional(counter: RateCounter) -> Any:
    """The middleware factory for Litestar's `middleware=[...]`."""

    def middleware(app: Any) -> Any:
        async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
            path = scope.get("path", "")
            digest = token_digest(_header(scope, b"authorization")) if scope["type"] == "http" else None
            if digest is None or path.startswith(FREE_PREFIXES):
                await app(scope, receive, send)
                return
            if scope["method"] != "GET":
                await app(scope, receive, _counting(send, counter, digest, path))
                return
            await _conditional_get(app, scope, receive, send, counter, digest)

        return wrapped

    return middleware


def _counting(send: Any, counter: RateCounter, digest: str, path: str) -> Any:
    async def counted(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if path not in FREE_PATHS:
                counter.of(digest).used += 1
            headers = list(message.get("headers", []))
            message = {**message, "headers": headers + counter.headers(digest, headers)}
        await send(message)

    return counted


async def _conditional_get(
    app: Any, scope: dict[str, Any], receive: Any, send: Any, counter: RateCounter, digest: str
) -> None:
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def collect(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, collect)
    body, status = b"".join(chunks), int(start["status"])
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"etag")]
    if status == 200:
        etag = etag_of(body)
        headers.append((b"etag", etag.encode()))
        if matches(_header(scope, b"if-none-match"), etag):
            status, body = 304, b""
            headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
    if status != 304 and scope["path"] not in FREE_PATHS:
        counter.of(digest).used += 1
    headers += counter.headers(digest, headers)
    if status != 304:
        headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
