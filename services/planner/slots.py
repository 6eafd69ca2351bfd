"""Concurrency caps: a workspace's `maxConcurrentSubtasks`, kept by its Schedule.

While the planner handles a batch (or a submission), its `Slots.gate` is the dispatch gate it
gives the Task's commands: a subtask of a capped workspace starts only with a free slot, else it
queues. When runs end, their slots free up and the queued subtasks start in order.

The cap comes from the `Workspace` aggregate, loaded from the log with the batch's tasks (and the
workspace's `Schedule`) in one read: the read model's copy of the config can lag the projector,
and a cap just set must count from the first batch after it. A workspace that was never capped
has no Schedule, and its subtasks start without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from libs.domain.schedule import Schedule, schedule_id, slot
from libs.domain.task import Task
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.eventstore.store import EventStore


def aggregate_ids(workspace_ids: Iterable[str]) -> list[UUID]:
    """What `Slots.adopt` needs of each workspace, for the caller's one `load_many`."""
    return [i for w in workspace_ids for i in (workspace_aggregate_id(w), schedule_id(w))]


class Slots:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.workspaces: dict[str, Workspace | None] = {}
        self.schedules: dict[str, Schedule] = {}

    def adopt(self, loaded: dict[UUID, Any], workspace_ids: Iterable[str]) -> None:
        """Takes each workspace's aggregate and Schedule out of `loaded` (a `load_many` of
        `aggregate_ids(workspace_ids)` among others)."""
        for workspace_id in dict.fromkeys(workspace_ids):
            workspace = loaded.pop(workspace_aggregate_id(workspace_id), None)
            schedule = loaded.pop(schedule_id(workspace_id), None)
            self.workspaces[workspace_id] = workspace if isinstance(workspace, Workspace) else None
            if isinstance(schedule, Schedule):
                self.schedules[workspace_id] = schedule

    def cap(self, workspace_id: str) -> int | None:
        if workspace_id not in self.workspaces:
            # A task of a workspace the caller did not name (none does today): one more read.
            self.adopt(self.store.load_many(aggregate_ids([workspace_id])), [workspace_id])
        workspace = self.workspaces[workspace_id]
        cap = workspace.config.get("maxConcurrentSubtasks") if workspace is not None else None
        return cap if isinstance(cap, int) else None

    def _books(self, workspace_id: str) -> Schedule | None:
        """The workspace's Schedule, opened when it first has a cap; None while it never had one."""
        cap = self.cap(workspace_id)
        if workspace_id not in self.schedules and cap is not None:
            self.schedules[workspace_id] = Schedule.open(workspace_id)
        return self.schedules.get(workspace_id)

    def gate(self, task: Task, subtask_id: str) -> bool:
        """The batch's `DispatchGate`: may the subtask start now (it takes a slot), or wait?"""
        schedule = self._books(task.workspace_id)
        # A workspace that had a cap keeps counting after it is lifted, so a cap set again
        # finds the subtasks still running.
        return schedule is None or schedule.request(slot(str(task.id), subtask_id), self.cap(task.workspace_id))

    def finished(self, task: Task, subtask_id: str) -> None:
        """A run of `subtask_id` ended: its slot is free (if the workspace keeps a schedule)."""
        schedule = self._books(task.workspace_id)
        if schedule is not None:
            schedule.finish(slot(str(task.id), subtask_id))

    def start_waiting(self, tasks: dict[UUID, Task]) -> None:
        """Starts queued subtasks while their workspace has free slots (a run ended, or the cap
        was raised or lifted); `tasks` gains the tasks it had to load. A queued subtask of a
        task that ended meanwhile gives its place up."""
        for workspace_id, schedule in list(self.schedules.items()):
            cap = self.cap(workspace_id)
            while keys := schedule.next_to_start(cap):
                starting = [(UUID(task_id), subtask_id) for task_id, subtask_id in (k.split("/") for k in keys)]
                tasks.update(self.store.load_many([t for t, _ in starting if t not in tasks]))  # one read
                for key, (task_id, subtask_id) in zip(keys, starting, strict=True):
                    if not tasks[task_id].release(subtask_id):  # it ended, or nothing waits
                        schedule.finish(key)

    def to_save(self) -> list[Any]:
        """Every schedule and workspace the batch loaded, changed or not: saved, each goes back
        to the store's kept aggregates, so it is not replayed from its first event each batch.
        A Workspace is the gateway's: the planner never changes it, so it appends nothing."""
        return [*self.schedules.values(), *(w for w in self.workspaces.values() if w is not None)]
