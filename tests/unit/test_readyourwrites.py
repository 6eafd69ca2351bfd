"""The gateway's ProjectionWatch: waits answered from the projector's notices."""

from __future__ import annotations

import asyncio

from services.gateway.livelogs import TERMINAL
from services.gateway.readyourwrites import ProjectionWatch

TASK = "550e8400-e29b-41d4-a716-446655440000"


async def test_several_waiters_on_one_task_each_get_the_status_they_wait_for() -> None:
    watch = ProjectionWatch("postgresql://unused")
    notify = watch.listener.on_payload  # what the LISTEN connection calls for each NOTIFY
    assert notify is not None
    reads: list[str] = []

    async def current() -> str:
        reads.append("review")
        return "review"

    # Two log sockets wait for the task's end while a review answer waits for it to leave review.
    ended = [asyncio.create_task(watch.status_reaches(TASK, TERMINAL.__contains__, current, 5.0)) for _ in range(2)]
    left_review = asyncio.create_task(watch.status_change(TASK, "review", current, 5.0))
    for _ in range(3):
        await asyncio.sleep(0)

    notify("7;11111111-1111-4111-8111-111111111111=running")  # another task: nobody reads
    notify(f"8;{TASK}=approved")
    assert await left_review == "approved"
    notify(f"9;{TASK}=completed")
    assert await asyncio.gather(*ended) == ["completed", "completed"]
    assert len(reads) == 3  # once each at the start, never per notice
    assert watch.position == 9


async def test_a_wait_that_times_out_returns_the_last_status_known() -> None:
    watch = ProjectionWatch("postgresql://unused")

    async def current() -> str:
        return "running"

    assert await watch.status_reaches(TASK, TERMINAL.__contains__, current, 0.05) == "running"


async def test_a_waiter_that_gives_up_leaves_the_others_watching() -> None:
    watch = ProjectionWatch("postgresql://unused")
    notify = watch.listener.on_payload
    assert notify is not None

    async def current() -> str:
        return "review"

    patient = asyncio.create_task(watch.status_reaches(TASK, TERMINAL.__contains__, current, 5.0))
    await asyncio.sleep(0)
    assert await watch.status_reaches(TASK, TERMINAL.__contains__, current, 0.05) == "review"
    notify(f"9;{TASK}=completed")
    async with asyncio.timeout(1.0):
        assert await patient == "completed"
