"""Wake-ups from PostgreSQL LISTEN/NOTIFY, coalesced into an asyncio event.

Followers of the log (relay, projector, read-your-writes waits) sleep on `wait()` and are
woken by the NOTIFY of each appending transaction; the timeout keeps them correct even if
a notification is lost with a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

log = logging.getLogger(__name__)


class Wakeups:
    """One follower's wake-ups: set by each notification, cleared when the follower waits."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that arrives together with the event, and the follower would never stop.
            async with asyncio.timeout(timeout):
                await self._event.wait()
        self._event.clear()

    def poke(self) -> None:
        self._event.set()


class Listener(Wakeups):
    """A LISTEN connection; itself the wake-ups of one follower, and `follower()` adds more
    followers in the process on the same connection (one notification each, not one each)."""

    def __init__(self, database_url: str, channel: str, on_payload: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.database_url = database_url
        self.channel = channel
        self.on_payload = on_payload
        self._followers: list[Wakeups] = [self]
        self._task: asyncio.Task[None] | None = None

    def follower(self) -> Wakeups:
        wakeups = Wakeups()
        wakeups.poke()  # it has not read yet: whatever is there is news to it
        self._followers.append(wakeups)
        return wakeups

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen:{self.channel}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    def _wake_all(self) -> None:
        for follower in self._followers:
            follower.poke()

    async def _run(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.database_url, autocommit=True) as conn:
                    await conn.execute(f'LISTEN "{self.channel}"')
                    self._wake_all()  # anything appended while we were not listening
                    async for notify in conn.notifies():
                        if self.on_payload is not None:
                            self.on_payload(notify.payload)
                        self._wake_all()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("LISTEN %s lost its connection; reconnecting", self.channel, exc_info=True)
                await asyncio.sleep(0.5)


class Beat:
    """One notification to come: waited on by any number of waiters."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> bool:
        """True when it came within `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
                return True
        return False

    def fire(self) -> None:
        self._event.set()


class Pulse:
    """Wakes every waiter at each notification, and never misses one for any of them: a waiter
    takes the next `Beat` *before* it looks for what it waits for, so a notification that comes
    while it looks still wakes it (an event cleared by one waiter would hide it from another)."""

    def __init__(self) -> None:
        self._beat = Beat()

    def next(self) -> Beat:
        return self._beat

    def fire(self) -> None:
        beat, self._beat = self._beat, Beat()
        beat.fire()
