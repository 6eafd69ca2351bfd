"""Waiting in tests for something another task, thread or process does."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool | Awaitable[bool]], message: str, timeout: float = 15.0) -> None:
    """Polls `check` (plain or async) until it holds, failing with `message` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not await _holds(check):
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.01)


async def _holds(check: Callable[[], bool | Awaitable[bool]]) -> bool:
    result = check()
    return bool(await result) if inspect.isawaitable(result) else bool(result)
