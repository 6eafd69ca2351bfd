"""What a process derives from a workspace's aggregate (its own provider keys, its Fly settings,
opened with SECRETS_KEY), kept per workspace so that a run starts without a read in the common
case.

What is kept of a workspace is forgotten when an event of the kinds that change it comes on the
bus (followed from the process's start; the subject says the workspace and the kind, nothing
to decode), and after `keep_s` anyway, in case the bus did not bring the news. A read begun
before such a change is not kept.
"""

from __future__ import annotations

import asyncio
import time
from typing import Generic, TypeVar

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from libs.bus.jetstream import follow_from_now
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.eventstore.store import EventStore

WORKSPACE_EVENTS = "events.*.workspace.>"
KEEP_S = 60.0
MAX_KEPT = 4096

T = TypeVar("T")


class WorkspaceKept(Generic[T]):
    """Subclasses say what they derive (`opened`) and which workspace events change it."""

    def __init__(self, store: EventStore, changes: frozenset[str], keep_s: float = KEEP_S) -> None:
        self.store = store
        self.changes = changes
        self.keep_s = keep_s
        self._kept: dict[str, tuple[float, T]] = {}
        # Bumped when a workspace changes: a read begun before the change is not kept.
        self._changes: dict[str, int] = {}

    def opened(self, workspace_id: str, workspace: Workspace | None) -> T:
        raise NotImplementedError

    async def follow(self, js: JetStreamContext) -> None:
        await follow_from_now(js, WORKSPACE_EVENTS, self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        # `events.<workspace>.workspace.<event>`
        _, workspace_id, _, event = msg.subject.split(".", 3)
        if event in self.changes:
            self.forget(workspace_id)

    def forget(self, workspace_id: str) -> None:
        self._kept.pop(workspace_id, None)
        self._changes[workspace_id] = self._changes.get(workspace_id, 0) + 1

    async def of(self, workspace_id: str) -> T:
        """What the workspace gives, opened. Reads the log when nothing current is kept."""
        kept = self._kept.get(workspace_id)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        changes = self._changes.get(workspace_id, 0)
        found = await asyncio.to_thread(self.store.load, workspace_aggregate_id(workspace_id))
        value = self.opened(workspace_id, found if isinstance(found, Workspace) else None)
        if self._changes.get(workspace_id, 0) == changes:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()  # bounded; the next runs read again
            self._kept[workspace_id] = (time.monotonic() + self.keep_s, value)
        return value
