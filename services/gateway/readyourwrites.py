"""Read-your-writes: a read waits (briefly) for the read models to reach a write's seq."""

from __future__ import annotations

import asyncio
import time

from libs.eventstore.listen import Listener
from libs.readmodels.schema import READMODELS_CHANNEL


class ProjectionWatch:
    def __init__(self, database_url: str) -> None:
        self.position = 0
        self.written = 0  # the highest seq a command through this gateway appended
        self._changed = asyncio.Event()
        self.listener = Listener(database_url, READMODELS_CHANNEL, on_payload=self._on_position)

    def _on_position(self, payload: str) -> None:
        if payload.isdigit():
            self.position = max(self.position, int(payload))
            self._changed.set()

    def wrote(self, seq: int) -> None:
        self.written = max(self.written, seq)

    async def reach(self, seq: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.position < seq:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._changed.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._changed.wait()
            except TimeoutError:
                return self.position >= seq
        return True

    async def changed(self, timeout: float) -> None:
        self._changed.clear()
        try:
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass
