"""Schedule: a workspace's running subtasks under its concurrency cap (`maxConcurrentSubtasks`),
owned by the planner. A subtask starts when a slot is free and nothing queued before it waits;
otherwise it queues, and starts, in order, as running ones finish."""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.schedule import ScheduleFinished, ScheduleOpened, ScheduleQueued, ScheduleStarted
from libs.domain.base import WorkspaceAggregate, derived_id


def schedule_id(workspace_id: str) -> UUID:
    return derived_id("schedule", workspace_id)


def slot(task_id: str, subtask_id: str) -> str:
    return f"{task_id}/{subtask_id}"


class Schedule(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        payload: ScheduleOpened

    def __init__(self, workspace_id: str, payload: ScheduleOpened) -> None:
        self.workspace_id = workspace_id
        self.running: list[str] = []
        self.queue: list[str] = []

    @classmethod
    def open(cls, workspace_id: str) -> Schedule:
        return cls._create(
            cls.Opened, id=schedule_id(workspace_id), workspace_id=workspace_id, payload=ScheduleOpened()
        )

    def request(self, key: str, cap: int | None) -> bool:
        """True when `key` may start now (and is counted as running); else it waits in line."""
        if key in self.running:
            return True
        if (cap is None or len(self.running) < cap) and not [k for k in self.queue if k != key]:
            self.emit(self.Started, ScheduleStarted(slot=key))
            return True
        if key not in self.queue:
            self.emit(self.Queued, ScheduleQueued(slot=key))
        return False

    class Queued(WorkspaceAggregate.Event):
        payload: ScheduleQueued

        def apply(self, schedule: Schedule) -> None:
            schedule.queue.append(self.payload.slot)

    class Started(WorkspaceAggregate.Event):
        payload: ScheduleStarted

        def apply(self, schedule: Schedule) -> None:
            if self.payload.slot in schedule.queue:
                schedule.queue.remove(self.payload.slot)
            schedule.running.append(self.payload.slot)

    def finish(self, key: str) -> None:
        if key in self.running or key in self.queue:
            self.emit(self.Finished, ScheduleFinished(slot=key))

    class Finished(WorkspaceAggregate.Event):
        payload: ScheduleFinished

        def apply(self, schedule: Schedule) -> None:
            for held in (schedule.running, schedule.queue):
                if self.payload.slot in held:
                    held.remove(self.payload.slot)

    def next_to_start(self, cap: int | None) -> list[str]:
        """The queued keys that may start now, in order; each is counted as running."""
        started = []
        while self.queue and (cap is None or len(self.running) < cap):
            key = self.queue[0]
            self.emit(self.Started, ScheduleStarted(slot=key))
            started.append(key)
        return started
