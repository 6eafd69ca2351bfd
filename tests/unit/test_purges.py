"""An executor's purges: the runs of the tasks a purge stopped are cancelled, and no run of
them starts after it; other tasks' runs go on."""

from __future__ import annotations

import asyncio

import pytest

from services.executor.purges import PURGED, Purges


async def test_a_purge_cancels_the_runs_of_the_tasks_it_stopped_and_no_other() -> None:
    purges = Purges()
    stopped, other = asyncio.create_task(asyncio.sleep(60)), asyncio.create_task(asyncio.sleep(60))
    with purges.watching("task-a", stopped), purges.watching("task-b", other):
        purges.stop(["task-a"])
        with pytest.raises(asyncio.CancelledError):
            await stopped
        assert not other.cancelled()
    other.cancel()
    assert stopped.cancelled() and purges.running == {}
    assert purges.is_stopped("task-a") and not purges.is_stopped("task-b")


async def test_the_cancel_says_why() -> None:
    purges = Purges()
    caught: list[str] = []

    async def agent() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as exc:
            caught.append(str(exc.args[0]) if exc.args else "")
            raise

    running = asyncio.create_task(agent())
    await asyncio.sleep(0)
    with purges.watching("task-a", running):
        purges.stop(["task-a"])
        with pytest.raises(asyncio.CancelledError):
            await running
    assert caught == [PURGED]
