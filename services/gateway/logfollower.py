"""The live part of the tasks' logs: one follower of `EVENTS` per gateway, fanned out by task.

One ordered consumer serves every open logs WebSocket of this gateway: with one consumer per
socket, every socket would be handed (and decode) every event of its workspace to keep a few.
The follower runs only while a socket is open, so a gateway nobody watches a log through costs
the bus nothing. Of each message only the subject is looked at, unless it is an event that makes
a log line (`task_log.LOGGED`) and someone follows its workspace; its lines go, with its seq, to
the readers of its task.

A reader registers before it reads the backlog (`rm_task_log`, then the log past the projector):
whatever is committed after that read began is published after the registration, so it reaches
the reader; the reader drops what the backlog already had (seq at or below it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.events import EventEnvelope, UnknownEventType, typed
from contracts.logs import LogEntry
from contracts.subjects import EVENTS_STREAM, EVENTS_SUBJECTS
from libs.bus.jetstream import follow_from_now
from libs.readmodels.task_log import LOGGED, log_entries

log = logging.getLogger(__name__)

_decoder = msgspec.json.Decoder(EventEnvelope)


class LogReader:
    """One socket's share of the follower: the lines of one task, with their events' seqs, as
    they arrive. A reader that lets `limit` lines pile up is overflowed: its socket reconnects."""

    def __init__(self, workspace_id: str, task_id: str, limit: int = 50_000) -> None:
        self.workspace_id = workspace_id
        self.task_id = task_id
        self._limit = limit
        self._lines: list[tuple[int, LogEntry]] = []
        self._arrived = asyncio.Event()
        self.overflowed = False

    def put(self, seq: int, entries: list[LogEntry]) -> None:
        if self.overflowed:
            return
        if len(self._lines) + len(entries) > self._limit:
            self.overflowed = True
        else:
            self._lines.extend((seq, e) for e in entries)
        self._arrived.set()

    async def wait(self) -> None:
        """Returns once there are lines to take (or the reader overflowed)."""
        await self._arrived.wait()

    def take(self) -> list[tuple[int, LogEntry]]:
        lines, self._lines = self._lines, []
        self._arrived.clear()
        return lines


class LogFollower:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._readers: dict[str, dict[str, set[LogReader]]] = defaultdict(lambda: defaultdict(set))
        self._count = 0
        self._sub: JetStreamContext.PushSubscription | None = None
        self._lock = asyncio.Lock()  # starting and stopping the consumer never interleave

    async def register(self, workspace_id: str, task_id: str) -> LogReader:
        """A reader of the task's lines from now on; the follower is running when this returns."""
        reader = LogReader(workspace_id, task_id)
        async with self._lock:
            if self._sub is None:
                self._sub = await follow_from_now(self._js, EVENTS_SUBJECTS, self._on_message)
            self._readers[workspace_id][task_id].add(reader)
            self._count += 1
        return reader

    async def unregister(self, reader: LogReader) -> None:
        """Safe to call once per registration; the last reader to go stops the consumer."""
        async with self._lock:
            tasks = self._readers.get(reader.workspace_id)
            readers = tasks.get(reader.task_id) if tasks else None
            if readers is None or reader not in readers:
                return
            readers.discard(reader)
            if not readers:
                del tasks[reader.task_id]  # type: ignore[index]
                if not tasks:
                    del self._readers[reader.workspace_id]
            self._count -= 1
            if self._count == 0 and self._sub is not None:
                sub, self._sub = self._sub, None
                await _close(self._js, sub)

    async def close(self) -> None:
        async with self._lock:
            sub, self._sub = self._sub, None
            if sub is not None:
                await _close(self._js, sub)

    async def _on_message(self, msg: Msg) -> None:
        _, workspace_id, type_ = msg.subject.split(".", 2)  # events.<ws>.<aggregate>.<event>
        if type_ not in LOGGED:
            return
        tasks = self._readers.get(workspace_id)
        if not tasks:
            return
        try:
            # Typed once: the task it is about and its lines read the payload's attributes.
            event = typed(_decoder.decode(msg.data))
        except (msgspec.DecodeError, UnknownEventType):  # a payload its Struct refuses included
            log.warning("skipping a malformed event on %s", msg.subject)
            return
        readers = tasks.get(event.payload.task_id)
        if not readers:
            return
        entries = log_entries(event)
        if entries:
            for reader in readers:
                reader.put(event.seq, entries)


async def _close(js: JetStreamContext, sub: JetStreamContext.PushSubscription) -> None:
    name = None
    with contextlib.suppress(Exception):
        # An ordered consumer is re-created under a new name after a reset: ask for the current one.
        name = (await sub.consumer_info()).name
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    if name is not None:
        with contextlib.suppress(Exception):
            await js.delete_consumer(EVENTS_STREAM, name)
