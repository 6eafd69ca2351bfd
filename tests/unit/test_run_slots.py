"""An executor's run slots: a parked run (waiting for a person) frees its slot and makes room
for another dispatch; going on, it waits for a slot; cancelled meanwhile, it gives back none."""

from __future__ import annotations

import asyncio
import contextlib

from prometheus_client import REGISTRY

from services.executor.runslots import RunSlots


async def test_room_is_the_slots_less_the_dispatches_taken_that_are_not_parked() -> None:
    slots = RunSlots(2)
    assert slots.room(taken=0) == 2
    async with slots.slot() as first:
        assert slots.room(taken=1) == 1
        first.park()  # waiting for a person
        assert slots.room(taken=1) == 2, "a parked run leaves room for another dispatch"
        async with slots.slot(), slots.slot():
            assert slots.room(taken=3) == 0
        await first.unpark()
        assert slots.room(taken=1) == 1
    assert slots.room(taken=0) == 2


async def test_a_run_going_on_waits_for_a_slot_and_cancelled_gives_back_none() -> None:
    slots = RunSlots(1)
    async with slots.slot() as waiting:
        waiting.park()
        async with slots.slot():  # the freed slot went to another run
            going_on = asyncio.create_task(waiting.unpark())
            await asyncio.sleep(0.05)
            assert not going_on.done(), "it waits: every slot is held"
            going_on.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await going_on
    # Nothing over-released: one slot, so a second holder waits for the first.
    async with slots.slot():
        second = asyncio.create_task(slots.slot().__aenter__())
        await asyncio.sleep(0.05)
        assert not second.done()
        second.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await second
    assert slots.room(taken=0) == 1


def gauges() -> dict[str, float]:
    found = {s.name + str(s.labels): s.value for m in REGISTRY.collect() for s in m.samples}
    return {
        "slots": found["orchestrator_run_slots{}"],
        "working": found["orchestrator_runs{'state': 'working'}"],
        "waiting": found["orchestrator_runs{'state': 'waiting'}"],
    }


async def test_the_metrics_show_the_slots_and_the_runs_working_and_waiting() -> None:
    slots = RunSlots(3)
    assert gauges() == {"slots": 3, "working": 0, "waiting": 0}
    async with slots.slot() as first, slots.slot():
        assert gauges() == {"slots": 3, "working": 2, "waiting": 0}
        first.park()
        assert gauges() == {"slots": 3, "working": 1, "waiting": 1}
        await first.unpark()
        assert gauges() == {"slots": 3, "working": 2, "waiting": 0}
    assert gauges() == {"slots": 3, "working": 0, "waiting": 0}
