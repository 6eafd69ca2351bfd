"""An executor process's run slots: how many agent runs go on at once, and so how many
dispatches the process takes from JetStream.

A run holds a slot while its agent works. A run waiting for a person's answer parks: it gives
its slot back (other runs go on) and takes one again, waiting for it if need be, when the answer
comes. The consumer asks for no more dispatches than there is room for: the slots less what it is
already handling, not counting parked runs. So a busy replica leaves the work to idle ones, where
it used to take every dispatch it was sent and hold it until a slot came free.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from libs.observability.metrics import RUN_SLOTS, RUNS


class RunSlots:
    def __init__(self, size: int) -> None:
        self.size = size
        self._free = asyncio.Semaphore(size)
        self._parked = 0
        self._held = 0
        self._resuming = 0  # answered, waiting for a slot to go on (shown only: not parked any more)
        RUN_SLOTS.set(size)
        self._show()

    def slot(self) -> RunSlot:
        """One run's slot: `async with slots.slot() as slot:` holds it for the run."""
        return RunSlot(self)

    def room(self, taken: int) -> int:
        """How many more dispatches to take, while the consumer handles `taken` of them (every
        run, parked or not, and pull requests being opened)."""
        return self.size - (taken - self._parked)

    async def _take(self) -> None:
        await self._free.acquire()
        self._held += 1
        self._show()

    def _give_back(self, parking: bool) -> None:
        self._held -= 1
        self._parked += parking
        self._free.release()
        self._show()

    def _resume(self) -> None:
        """A parked run was answered: it waits for a slot to go on."""
        self._parked -= 1
        self._resuming += 1
        self._show()

    def _left(self) -> None:
        """A parked run ended without going on."""
        self._parked -= 1
        self._show()

    def _resumed(self) -> None:
        """It has its slot again, or was cancelled while it waited for one."""
        self._resuming -= 1
        self._show()

    def _show(self) -> None:
        RUNS.labels("working").set(self._held)
        RUNS.labels("waiting").set(self._parked)
        RUNS.labels("resuming").set(self._resuming)


class RunSlot:
    def __init__(self, slots: RunSlots) -> None:
        self._slots = slots
        self._held = False
        self._parked = False

    async def __aenter__(self) -> RunSlot:
        await self._slots._take()
        self._held = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(parking=False)

    def park(self) -> None:
        """The run waits for a person: its slot goes to other runs meanwhile."""
        if self._held:
            self._held, self._parked = False, True
            self._slots._give_back(parking=True)

    def leave(self) -> None:
        """The run ends while parked (stopped as it waited): it takes no slot again."""
        if self._parked:
            self._parked = False
            self._slots._left()

    async def unpark(self) -> None:
        """The run goes on: it takes a slot again, waiting for one if need be (only if it parked).
        Cancelled while it waits, it holds none, and leaving the `async with` gives nothing back."""
        if not self._parked:
            return
        self._parked = False
        self._slots._resume()
        try:
            await self._slots._take()
        finally:
            self._slots._resumed()
        self._held = True
