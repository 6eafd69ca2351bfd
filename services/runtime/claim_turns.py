"""One session's claims, one at a time in this process: the lease limit is counted and the
claim made in one turn, so two `claim-next` calls of one session sent at once cannot both pass
the limit. The runs claimed here are remembered until the read models have them: they count
from the moment the claim is made, not from when the projector gets to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class ClaimTurns:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._claimed: dict[str, set[str]] = {}

    @contextlib.asynccontextmanager
    async def turn(self, session_id: str) -> AsyncIterator[set[str]]:
        """The session's turn to claim, and the runs it claimed through this process (add the
        one it claims now)."""
        lock = self._locks.setdefault(session_id, asyncio.Lock())
        async with lock:
            claimed = self._claimed.setdefault(session_id, set())
            try:
                yield claimed
            finally:
                if not claimed:
                    self._claimed.pop(session_id, None)
                if not lock._waiters:
                    self._locks.pop(session_id, None)
