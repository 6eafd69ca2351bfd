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
        **{state: found[f"orchestrator_runs{{'state': '{state}'}}"] for state in ("working", "waiting", "resuming")},
    }


def shown(slots: int, working: int = 0, waiting: int = 0, resuming: int = 0) -> dict[str, float]:
    return {"slots": slots, "working": working, "waiting": waiting, "resuming": resuming}


async def test_the_metrics_show_the_slots_and_the_runs_working_waiting_and_resuming() -> None:
    slots = RunSlots(2)
    assert gauges() == shown(2)
    async with slots.slot() as first, slots.slot():
        assert gauges() == shown(2, working=2)
        first.park()
        assert gauges() == shown(2, working=1, waiting=1)
        async with slots.slot():  # its slot went to another run
            going_on = asyncio.create_task(first.unpark())  # answered: it waits for a slot
            await asyncio.sleep(0.05)
            assert gauges() == shown(2, working=2, resuming=1)
        await going_on
        assert gauges() == shown(2, working=2)
    assert gauges() == shown(2)


async def test_the_metrics_count_nothing_for_a_run_cancelled_while_it_resumes_or_ended_by_an_error() -> None:
    slots = RunSlots(1)
    with contextlib.suppress(RuntimeError):
        async with slots.slot() as waiting:
            waiting.park()
            async with slots.slot():
                going_on = asyncio.create_task(waiting.unpark())
                await asyncio.sleep(0.05)
                going_on.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await going_on
                assert gauges() == shown(1, working=1)
            raise RuntimeError("the run failed")
    assert gauges() == shown(1)


async def test_a_run_stopped_while_parked_leaves_without_taking_a_slot_again() -> None:
    slots = RunSlots(1)
    async with slots.slot() as stopped:
        stopped.park()
        async with slots.slot():  # another run has the only slot meanwhile
            assert REGISTRY.get_sample_value("orchestrator_runs", {"state": "waiting"}) == 1
            stopped.leave()  # its task was purged as it waited: it goes on no more, and waits for nothing
            assert REGISTRY.get_sample_value("orchestrator_runs", {"state": "waiting"}) == 0
            assert REGISTRY.get_sample_value("orchestrator_runs", {"state": "resuming"}) == 0
    assert slots.room(taken=0) == 1, "leaving the `async with` gave back nothing it did not hold"
