"""One ordered JetStream consumer per stream replica, fanned out to every SSE client.

A client registers its queue before it reads its catch-up from PostgreSQL: whatever is
committed after that read began is published after the registration, so it reaches the
queue. The feed then drops what the catch-up already sent (seq <= last sent).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.events import EventEnvelope, task_of, typed
from contracts.payloads.workspace import WorkspacePurged
from contracts.subjects import EVENTS_SUBJECTS
from libs.bus.jetstream import follow_from_now
from libs.observability.metrics import SSE_CONNECTIONS

log = logging.getLogger(__name__)

QUEUE_LIMIT = 10_000
PURGED = "workspace.purged"
_decoder = msgspec.json.Decoder(EventEnvelope)


class Overflowed:
    """Put on a client's queue when it fell too far behind: it reconnects and resumes."""


Queue = asyncio.Queue[EventEnvelope | Overflowed]


class Broadcaster:
    def __init__(self) -> None:
        # Every event of a workspace (the events feed), and one type of event of a workspace
        # (the tool call log's stream): a client of one type is not sent, nor held up by, the rest.
        self.clients: dict[str, set[Queue]] = defaultdict(set)
        self.typed: dict[tuple[str, str], set[Queue]] = defaultdict(set)
        self.stopped: dict[str, set[str]] = defaultdict(set)  # workspace -> tasks its purges stopped

    async def start(self, js: JetStreamContext) -> None:
        await follow_from_now(js, EVENTS_SUBJECTS, self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        _, workspace_id, type_ = msg.subject.split(".", 2)  # events.<ws>.<aggregate>.<event>
        if type_ == PURGED:
            self._purged(_decoder.decode(msg.data))
        every, typed = self.clients.get(workspace_id), self.typed.get((workspace_id, type_))
        if not (every or typed):
            return
        event = _decoder.decode(msg.data)
        if self.stopped and task_of(event) in self.stopped.get(workspace_id, ()):
            return  # what a purged task's runs still record as they stop: not the workspace's any more
        for queues in (every, typed):
            if not queues:
                continue
            for queue in list(queues):
                if queue.qsize() >= QUEUE_LIMIT:
                    queues.discard(queue)
                    queue.put_nowait(Overflowed())
                else:
                    queue.put_nowait(event)

    def remember_stopped(self, stopped: dict[str, set[str]]) -> None:
        """The tasks earlier purges stopped, as the read models hold them: read once the follower
        is subscribed, so a purge is known from one or the other, or both."""
        for workspace_id, tasks in stopped.items():
            self.stopped[workspace_id].update(tasks)

    def _purged(self, event: EventEnvelope) -> None:
        """A purge's stopped tasks: their last events (cancelled, their runs' ends and charges)
        are recorded after it, and the read models leave them out (`libs.readmodels.projector`),
        so the live feeds do too. Kept for the process's life (a few ids per purge), and read
        back from the read models when the process starts (`remember_stopped`)."""
        purge: WorkspacePurged = typed(event).payload
        self.stopped[event.workspace_id].update(purge.stopped_tasks)

    def register(self, workspace_id: str, type_: str | None = None) -> Queue:
        """A queue for every event of the workspace, or only for its events of `type_`."""
        queue: Queue = asyncio.Queue()
        self._queues(workspace_id, type_).add(queue)
        self._gauge()
        return queue

    def unregister(self, workspace_id: str, queue: Queue, type_: str | None = None) -> None:
        key = workspace_id if type_ is None else (workspace_id, type_)
        queues = self.clients.get(key) if type_ is None else self.typed.get(key)  # type: ignore[call-overload]
        if queues is not None:
            queues.discard(queue)
            if not queues:  # a workspace nobody follows any more keeps no empty set
                (self.clients if type_ is None else self.typed).pop(key, None)  # type: ignore[call-overload]
        self._gauge()

    def _queues(self, workspace_id: str, type_: str | None) -> set[Queue]:
        return self.clients[workspace_id] if type_ is None else self.typed[(workspace_id, type_)]

    def _gauge(self) -> None:
        total = sum(len(q) for q in self.clients.values()) + sum(len(q) for q in self.typed.values())
        SSE_CONNECTIONS.set(total)

    def count(self, workspace_id: str) -> int:
        """Subscribers of the workspace's events feed (spec 001's events/connections)."""
        return len(self.clients.get(workspace_id, ()))
