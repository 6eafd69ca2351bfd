"""Purges and stops, seen from the runs of this executor: spec 001's purge "pauses the executor",
so a purged workspace's unfinished tasks make no other model or tool call; spec 003's stop
cancels a task, and its running agent stops within a second.

Each executor follows `workspace.purged` and `task.cancelled` with ordered consumers from its
start (every replica must hear of every one: a durable consumer would tell only one), and
cancels its runs of the tasks stopped, wherever they are: in a model call, waiting for a
person's answer, or for their checks. A dispatch of such a task that comes after starts no run.
Runs started before this process are not its own, so nothing older is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.workspace import WorkspacePurged
from libs.bus.jetstream import follow_from_now

log = logging.getLogger(__name__)

PURGE_EVENTS = "events.*.workspace.purged"
CANCEL_EVENTS = "events.*.task.cancelled"
PURGED = "stopped: the workspace was purged"
TASK_CANCELLED = "stopped: its task was cancelled"
# Stopped tasks remembered, for their dispatches still on the way: the oldest go first beyond it.
REMEMBERED = 50_000
_decoder = msgspec.json.Decoder(EventEnvelope)


class Purges:
    def __init__(self) -> None:
        # Tasks stopped since this process started, and why their runs stop: oldest first.
        self.stopped: OrderedDict[str, str] = OrderedDict()
        self.running: dict[str, set[asyncio.Task[None]]] = {}  # task id -> its runs' agents here

    async def start(self, js: JetStreamContext) -> None:
        await follow_from_now(js, PURGE_EVENTS, self._on_purge)
        await follow_from_now(js, CANCEL_EVENTS, self._on_cancel)

    async def _on_purge(self, msg: Msg) -> None:
        event: Event[WorkspacePurged] = typed(_decoder.decode(msg.data))
        self.stop(event.payload.stopped_tasks)

    async def _on_cancel(self, msg: Msg) -> None:
        # Only whose: the payload (why) is the task's, the run records its own reason.
        self.stop([_decoder.decode(msg.data).aggregate_id], TASK_CANCELLED)

    def stop(self, task_ids: list[str], reason: str = PURGED) -> None:
        """The tasks were stopped: their runs here are cancelled, and none of theirs starts. The
        first reason heard stays (a purge cancels the tasks it stops: it says so first)."""
        for task_id in task_ids:
            self.stopped.setdefault(task_id, reason)
            for agent in self.running.get(task_id, ()):
                log.info("task %s was stopped: its run here stops", task_id)
                agent.cancel(self.stopped[task_id])
        while len(self.stopped) > REMEMBERED:
            self.stopped.popitem(last=False)

    def is_stopped(self, task_id: str) -> bool:
        return task_id in self.stopped

    def reason(self, task_id: str) -> str:
        """Why the task's runs stop: its run's error."""
        return self.stopped.get(task_id, PURGED)

    @contextlib.contextmanager
    def watching(self, task_id: str, agent: asyncio.Task[None]) -> Iterator[None]:
        """While `agent` runs for the task, a purge or a stop of the task cancels it."""
        self.running.setdefault(task_id, set()).add(agent)
        if task_id in self.stopped:
            # Stopped between the dispatch's check and this run's start: it stops at once.
            agent.cancel(self.stopped[task_id])
        try:
            yield
        finally:
            agents = self.running.get(task_id)
            if agents is not None:
                agents.discard(agent)
                if not agents:
                    del self.running[task_id]


def cancelling() -> bool:
    """Whether the running asyncio task is being cancelled (we are in its way out): a run's
    agent stopped by a purge, or the executor itself stopping."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
