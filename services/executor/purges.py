"""Purges, seen from the runs of this executor: spec 001's purge "pauses the executor", so a
purged workspace's unfinished tasks make no other model or tool call.

Each executor follows `workspace.purged` with an ordered consumer from its start (every replica
must hear of every purge: a durable consumer would tell only one), and cancels its runs of the
tasks the purge stopped, wherever they are: in a model call, waiting for a person's answer, or
for their checks. A dispatch of such a task that comes after the purge starts no run. Runs
started before this process are not its own, so nothing older is needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.workspace import WorkspacePurged
from libs.bus.jetstream import follow_from_now

log = logging.getLogger(__name__)

PURGE_EVENTS = "events.*.workspace.purged"
PURGED = "stopped: the workspace was purged"
_decoder = msgspec.json.Decoder(EventEnvelope)


class Purges:
    def __init__(self) -> None:
        self.stopped: set[str] = set()  # tasks a purge stopped since this process started
        self.running: dict[str, set[asyncio.Task[None]]] = {}  # task id -> its runs' agents here

    async def start(self, js: JetStreamContext) -> None:
        await follow_from_now(js, PURGE_EVENTS, self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        event: Event[WorkspacePurged] = typed(_decoder.decode(msg.data))
        self.stop(event.payload.stopped_tasks)

    def stop(self, task_ids: list[str]) -> None:
        """The tasks were stopped: their runs here are cancelled, and none of theirs starts."""
        self.stopped.update(task_ids)
        for task_id in task_ids:
            for agent in self.running.get(task_id, ()):
                log.info("task %s was purged: its run here stops", task_id)
                agent.cancel(PURGED)

    def is_stopped(self, task_id: str) -> bool:
        return task_id in self.stopped

    @contextlib.contextmanager
    def watching(self, task_id: str, agent: asyncio.Task[None]) -> Iterator[None]:
        """While `agent` runs for the task, a purge that stops the task cancels it."""
        self.running.setdefault(task_id, set()).add(agent)
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
