"""Wakes the `recv?wait=true` long-polls of a channel when its messages can be read.

The projector NOTIFYs `channel_messages` with the ids of the channels whose messages a batch
wrote, in the transaction that writes them (`libs.readmodels.channels`): a waiter woken by it
finds them, whatever replica of the runtime it waits on and whichever sent them. The path from a
send is its commit, the projector's wake-up on the log's NOTIFY, one projection, this notice:
milliseconds. A notice lost with the LISTEN connection costs a waiter at most `RECHECK_S`, the
longest it sleeps between looks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from libs.eventstore.listen import Listener
from libs.readmodels.channels import ALL, MESSAGES_CHANNEL

RECHECK_S = 1.0
T = TypeVar("T")


class ChannelWaits:
    def __init__(self, database_url: str) -> None:
        # Channel id -> one event per waiting request (a shared one could be cleared by one
        # waiter between another's look and its wait).
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self.listener = Listener(database_url, MESSAGES_CHANNEL, on_payload=self.notified)

    async def start(self) -> None:
        await self.listener.start()

    async def stop(self) -> None:
        await self.listener.stop()

    def notified(self, payload: str) -> None:
        woken = self._waiting.keys() if payload == ALL else payload.split(",")
        for channel_id in list(woken):
            for event in self._waiting.get(channel_id, ()):
                event.set()

    async def until_some(self, channel_id: str, look: Callable[[], Awaitable[list[T]]], timeout: float) -> list[T]:
        """`look()`'s first answer that is not empty, or the empty one once `timeout` passed."""
        async with self._watching(channel_id) as event:
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                event.clear()  # before looking: a notice during the look is not lost
                found = await look()
                remaining = deadline - asyncio.get_running_loop().time()
                if found or remaining <= 0:
                    return found
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, RECHECK_S)):
                        await event.wait()

    @contextlib.asynccontextmanager
    async def _watching(self, channel_id: str) -> AsyncIterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiting.setdefault(channel_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiting[channel_id]
            waiters.discard(event)
            if not waiters:
                del self._waiting[channel_id]

    @property
    def waiting(self) -> int:
        return sum(len(w) for w in self._waiting.values())
