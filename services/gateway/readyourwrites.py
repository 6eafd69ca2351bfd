"""Read-your-writes: a read waits (briefly) for the read models to reach what it depends on.

The projector NOTIFYs its position after each commit, with the tasks whose status changed in
that commit; reads that wait for a position or for a status change are answered from these
notices, with no query per wake-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from libs.eventstore.listen import Listener
from libs.readmodels.projector import parse_notice
from libs.readmodels.schema import READMODELS_CHANNEL


class ProjectionWatch:
    def __init__(self, database_url: str) -> None:
        self.position = 0
        self.written = 0  # the highest seq a command through this gateway appended
        # One event per waiting request: a shared one could be cleared by one waiter between
        # another's check and its wait, and that one would sleep through the notice.
        self._waiters: set[asyncio.Event] = set()
        # Task -> one list per waiting request of the statuses announced for it since.
        self._watched: dict[str, list[list[str | None]]] = {}
        self.listener = Listener(database_url, READMODELS_CHANNEL, on_payload=self._on_notice)

    def _on_notice(self, payload: str) -> None:
        try:
            position, statuses = parse_notice(payload)
        except ValueError:
            return
        self.position = max(self.position, position)
        for task_id, waiters in self._watched.items():
            for seen in waiters:
                if statuses is None:
                    seen.append(None)  # unknown: the waiter has to look
                elif task_id in statuses:
                    seen.append(statuses[task_id])
        for waiter in self._waiters:
            waiter.set()

    def caught_up_to(self, position: int) -> None:
        """The projector's position read directly (at start: no notice has arrived yet)."""
        self.position = max(self.position, position)

    def wrote(self, seq: int) -> None:
        self.written = max(self.written, seq)

    async def reach(self, seq: int, timeout: float) -> bool:
        async with self._waiting(timeout) as next_notice:
            while self.position < seq:
                if not await next_notice():
                    return self.position >= seq
        return True

    async def moved(self, position: int, timeout: float) -> bool:
        """Waits (at most `timeout`) for the projector to pass `position`: something was appended
        after it. A follower of the log sleeps on this between its reads."""
        async with self._waiting(timeout) as next_notice:
            while self.position <= position:
                if not await next_notice():
                    return False
        return True

    async def status_change(
        self, task_id: str, status: str, current: Callable[[], Awaitable[str | None]], timeout: float
    ) -> str | None:
        """Waits until the task's projected status is no longer `status`; returns the new one."""
        return await self.status_reaches(task_id, lambda now: now != status, current, timeout)

    async def status_reaches(
        self,
        task_id: str,
        reached: Callable[[str | None], bool],
        current: Callable[[], Awaitable[str | None]],
        timeout: float,
    ) -> str | None:
        """Waits (at most `timeout`) until `reached` holds for the task's projected status;
        returns the last status known. `current` reads it: once at the start, then only when
        a notice could not say (too many changes in one batch)."""
        seen: list[str | None] = []
        self._watched.setdefault(task_id, []).append(seen)
        try:
            async with self._waiting(timeout) as next_notice:
                now = await current()
                while not reached(now):
                    if seen:
                        announced = seen.pop(0)
                        now = announced if announced is not None else await current()
                    elif not await next_notice():
                        break
                return now
        finally:
            # By identity: another waiter's list may be equal to this one (both empty, say).
            waiters = [w for w in self._watched[task_id] if w is not seen]
            if waiters:
                self._watched[task_id] = waiters
            else:
                del self._watched[task_id]

    @contextlib.asynccontextmanager
    async def _waiting(self, timeout: float) -> AsyncIterator[Callable[[], Awaitable[bool]]]:
        """Yields `next_notice()`: True once a notice arrived since the last call (or since
        entering), False when the deadline passed. Registered before the caller's first check."""
        event = asyncio.Event()
        event.set()  # the caller checks once before it ever waits
        deadline = time.monotonic() + timeout
        self._waiters.add(event)

        async def next_notice() -> bool:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return False
            event.clear()
            return True

        try:
            await next_notice()  # consumes the initial set
            yield next_notice
        finally:
            self._waiters.discard(event)
