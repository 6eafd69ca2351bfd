"""How the executor subscribes: dispatches sized by its run slots, approvals on their own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from libs.bus.consumer import EachAlone
from libs.config import Settings
from libs.runtime import Started
from services.executor import main
from services.executor.runslots import RunSlots


@pytest.fixture
async def subscriptions() -> AsyncIterator[dict[str, Any]]:
    # What the runtime hands the service before it builds the subscriptions; nothing here
    # connects to anything (clients open lazily), and the store is not touched.
    settings = Settings(service="executor", database_url="postgresql://unused", max_concurrent_runs=3)
    started = Started(settings, store=None, nc=object())  # type: ignore[arg-type]
    deps = main.SERVICE.wire(started)
    yield {sub.durable: sub for sub in main.SERVICE.subscriptions(deps)}
    await main._stop(deps)  # as the runtime does: what the wiring opened is closed


async def test_dispatches_are_taken_only_as_far_as_the_run_slots_have_room(subscriptions: dict[str, Any]) -> None:
    executor = subscriptions["executor"]
    # An orchestration's agent steps are dispatches of the same shape, sharing the run slots.
    assert executor.filter_subjects == (
        "events.*.task.subtask_dispatched",
        "events.*.orchestration_run.step_dispatched",
    )
    assert isinstance(executor.handle, EachAlone)
    slots = executor.handle.capacity
    assert isinstance(slots, RunSlots) and slots.size == 3, "MAX_CONCURRENT_RUNS sizes the slots"
    assert slots.room(taken=3) == 0


async def test_approvals_have_a_consumer_of_their_own_that_no_run_holds_up(subscriptions: dict[str, Any]) -> None:
    pulls = subscriptions["executor-pulls"]
    assert pulls.filter_subjects == ("events.*.task.approved",)
    assert isinstance(pulls.handle, EachAlone) and pulls.handle.capacity is None
    assert set(subscriptions) == {"executor", "executor-pulls"}
