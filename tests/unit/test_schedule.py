"""The Schedule aggregate: slots under a cap, first come first served."""

from __future__ import annotations

from libs.domain.base import EventTypes
from libs.domain.schedule import Schedule


def names(schedule: Schedule) -> list[str]:
    return [EventTypes.name(type(e)) for e in schedule.collect_events()]


def test_within_the_cap_a_subtask_starts_and_past_it_waits_in_line() -> None:
    schedule = Schedule.open("ws")
    schedule.collect_events()

    assert [schedule.request(k, cap=2) for k in ("t1/a", "t2/a", "t3/a", "t4/a")] == [True, True, False, False]
    assert names(schedule) == ["schedule.started", "schedule.started", "schedule.queued", "schedule.queued"]
    assert schedule.request("t1/a", cap=2), "asking again for a running slot is a no-op yes"
    assert not schedule.request("t3/a", cap=2) and names(schedule) == [], "and a queued one stays queued once"


def test_a_finished_slot_goes_to_the_first_in_line_and_a_newcomer_waits_behind() -> None:
    schedule = Schedule.open("ws")
    for key in ("t1/a", "t2/a", "t3/a"):
        schedule.request(key, cap=1)
    schedule.finish("t1/a")

    assert not schedule.request("t4/a", cap=1), "a free slot is not taken past those waiting"
    assert schedule.next_to_start(cap=1) == ["t2/a"]
    assert schedule.running == ["t2/a"] and schedule.queue == ["t3/a", "t4/a"]


def test_no_cap_lets_everything_queued_start() -> None:
    schedule = Schedule.open("ws")
    for key in ("t1/a", "t2/a", "t3/a"):
        schedule.request(key, cap=1)

    assert schedule.next_to_start(cap=None) == ["t2/a", "t3/a"]
    assert schedule.queue == []
