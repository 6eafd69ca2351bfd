"""A long-lived SSE response ends once its key is revoked."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import pytest

from libs.web import sse as feed
from libs.web.sse import until_revoked


async def test_a_feed_ends_once_its_key_is_revoked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "KEEPALIVE_S", 0.0)  # check after every chunk
    answers = [True, True, False, True]
    closed = []

    async def chunks() -> AsyncGenerator[bytes, None]:
        try:
            for i in range(10):
                yield b"%d" % i
        finally:
            closed.append(True)

    async def still_valid() -> bool:
        return answers.pop(0)

    got = [chunk async for chunk in until_revoked(chunks(), still_valid)]

    assert got == [b"0", b"1", b"2"]
    assert closed == [True], "the inner feed (and its subscription) is closed too"
