"""Concurrency caps: a workspace's `maxConcurrentSubtasks`, kept by its Schedule.

While the planner handles a batch (or a submission), a `Slots` is the Task's dispatch gate: a
subtask of a capped workspace starts only with a free slot, else it queues. When runs end, their
slots free up and the queued subtasks start in order. Workspaces without a cap never touch a
Schedule, so they pay nothing for this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any
from uuid import UUID

from libs.domain.schedule import Schedule, schedule_id, slot
from libs.domain.task import DISPATCH_GATE, Task
from libs.eventstore.store import EventStore
from libs.readmodels import lookups


class Slots:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.caps: dict[str, int | None] = {}
        self.schedules: dict[str, Schedule] = {}
        self.absent: set[str] = set()

    def cap(self, workspace_id: str) -> int | None:
        if workspace_id not in self.caps:
            # One round trip per workspace and batch: its cap, and whether it keeps a schedule.
            cap, scheduled = lookups.concurrency(self.store, workspace_id, schedule_id(workspace_id))
            self.caps[workspace_id] = cap
            if not scheduled:
                self.absent.add(workspace_id)
        return self.caps[workspace_id]

    def schedule(self, workspace_id: str) -> Schedule:
        if workspace_id not in self.schedules:
            found = self.store.load_many([schedule_id(workspace_id)]).get(schedule_id(workspace_id))
            self.schedules[workspace_id] = found if isinstance(found, Schedule) else Schedule.open(workspace_id)
        return self.schedules[workspace_id]

    def gate(self, task: Task, subtask_id: str) -> bool:
        cap = self.cap(task.workspace_id)
        if cap is None and task.workspace_id not in self.schedules:
            return True  # no cap, and nothing this batch to keep the books of
        return self.schedule(task.workspace_id).request(slot(str(task.id), subtask_id), cap)

    @contextlib.contextmanager
    def guarding(self) -> Iterator[None]:
        token = DISPATCH_GATE.set(self.gate)
        try:
            yield
        finally:
            DISPATCH_GATE.reset(token)

    def finished(self, task: Task, subtask_id: str) -> None:
        """A run of `subtask_id` ended: its slot is free (if the workspace keeps a schedule)."""
        if self.cap(task.workspace_id) is not None or self._has_schedule(task.workspace_id):
            self.schedule(task.workspace_id).finish(slot(str(task.id), subtask_id))

    def _has_schedule(self, workspace_id: str) -> bool:
        """Whether the workspace keeps a schedule (it had a cap once): known from `cap`'s read."""
        self.cap(workspace_id)
        return workspace_id in self.schedules or workspace_id not in self.absent

    def watch(self, workspace_id: str, config: dict[str, Any]) -> None:
        """The workspace's config changed: its queue gets a look at the end of the batch, under
        the cap the change set (the read model may not show it yet)."""
        self.cap(workspace_id)
        self.caps[workspace_id] = config.get("maxConcurrentSubtasks")
        if self.caps[workspace_id] is not None or self._has_schedule(workspace_id):
            self.schedule(workspace_id)

    def start_waiting(self, tasks: dict[UUID, Task]) -> None:
        """Starts queued subtasks while their workspace has free slots; `tasks` gains the tasks
        it had to load. A queued subtask of a task that ended meanwhile gives its place up."""
        for workspace_id, schedule in list(self.schedules.items()):
            cap = self.cap(workspace_id)
            while keys := schedule.next_to_start(cap):
                starting = [(UUID(task_id), subtask_id) for task_id, subtask_id in (k.split("/") for k in keys)]
                tasks.update(self.store.load_many([t for t, _ in starting if t not in tasks]))  # one read
                for key, (task_id, subtask_id) in zip(keys, starting, strict=True):
                    if not tasks[task_id].release(subtask_id):  # it ended, or nothing waits
                        schedule.finish(key)

    def to_save(self) -> list[Any]:
        """Every schedule the batch used, changed or not: saved, each goes back to the store's
        kept aggregates, so a workspace's schedule is not replayed from its first event each batch."""
        return list(self.schedules.values())
