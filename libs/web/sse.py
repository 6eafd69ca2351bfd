"""Server-sent events as the HTTP edges send them: pre-encoded frames in a plain stream, with
keep-alives, that ends once the caller's key is revoked."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.response import Stream

from libs.web.auth import key_checker

# An idle stream sends a comment this often (proxies keep it open), and the key is checked as often.
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000
CONNECTED = b": connected\nretry: %d\n\n" % RECONNECT_MS


async def until_revoked(
    feed: AsyncGenerator[bytes, None], still_valid: Callable[[], Awaitable[bool]]
) -> AsyncGenerator[bytes, None]:
    """`feed`, ended once its key is revoked: checked at most every KEEPALIVE_S, and the feed
    yields at least that often (a keep-alive when idle)."""
    checked = time.monotonic()
    try:
        async for chunk in feed:
            yield chunk
            if time.monotonic() - checked >= KEEPALIVE_S:
                checked = time.monotonic()
                if not await still_valid():
                    return
    finally:
        await feed.aclose()


def sse_response(request: Request[Any, Any, Any], feed: AsyncGenerator[bytes, None]) -> Stream:
    """A plain stream of pre-encoded SSE bytes (frames ready together leave in one write), that
    ends once the caller's key is revoked."""
    return Stream(
        until_revoked(feed, key_checker(request)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
