"""An executor's purges and stops: the runs of the tasks a purge or a stop (spec 003) ended are
cancelled, saying why, and no run of them starts after it; other tasks' runs go on."""

from __future__ import annotations

import asyncio

import pytest

from services.executor import purges as purges_module
from services.executor.purges import PURGED, TASK_CANCELLED, Purges


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


async def _cancelled_with(agent: asyncio.Task[None]) -> str:
    try:
        await agent
    except asyncio.CancelledError as exc:
        return str(exc.args[0]) if exc.args else ""
    raise AssertionError("the agent was not cancelled")


async def test_a_stop_cancels_the_tasks_runs_and_says_its_task_was_cancelled() -> None:
    purges = Purges()
    running = asyncio.create_task(asyncio.sleep(60))
    with purges.watching("task-a", running):
        purges.stop(["task-a"], TASK_CANCELLED)
        assert await _cancelled_with(running) == TASK_CANCELLED
    assert purges.reason("task-a") == TASK_CANCELLED and purges.is_stopped("task-a")


async def test_the_first_reason_heard_stays_a_purge_then_its_cancellations() -> None:
    purges = Purges()
    purges.stop(["task-a"])  # the purge
    purges.stop(["task-a"], TASK_CANCELLED)  # the planner's cancellation of the task it stopped

    assert purges.reason("task-a") == PURGED


async def test_a_run_that_starts_after_its_task_was_stopped_is_cancelled_at_once() -> None:
    purges = Purges()
    purges.stop(["task-a"], TASK_CANCELLED)
    late = asyncio.create_task(asyncio.sleep(60))

    with purges.watching("task-a", late):
        assert await _cancelled_with(late) == TASK_CANCELLED


async def test_the_stopped_tasks_remembered_are_bounded_the_oldest_forgotten_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(purges_module, "REMEMBERED", 3)
    purges = Purges()
    for i in range(5):
        purges.stop([f"task-{i}"], TASK_CANCELLED)

    assert [purges.is_stopped(f"task-{i}") for i in range(5)] == [False, False, True, True, True]
