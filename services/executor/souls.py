"""The souls of the executor's agents: a workspace's soul for an agent name (spec 002) shapes the
system prompt of the executor's runs of the agent type of that name (its `codegen` soul, its
`test` soul...), as it shapes an agent session's.

Read from the event store (the soul's aggregate, one indexed read) and kept for `KEEP_S` per
workspace and name: a run starts without that read in the common case, and a soul set takes
effect on the runs that start at most `KEEP_S` later.
"""

from __future__ import annotations

import threading
import time

from libs.domain.agent_soul import AgentSoul, soul_id
from libs.eventstore.store import EventStore
from libs.soul.document import parse
from libs.soul.prompt import system_prompt_section

KEEP_S = 5.0
MAX_KEPT = 4096


class Souls:
    def __init__(self, store: EventStore, keep_s: float = KEEP_S) -> None:
        self.store = store
        self.keep_s = keep_s
        self._kept: dict[tuple[str, str], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def section(self, workspace_id: str, agent_name: str) -> str:
        """What the soul adds to the system prompt ("" without one). Blocking: call in a thread."""
        key, now = (workspace_id, agent_name), time.monotonic()
        with self._lock:
            kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        found = self.store.load(soul_id(workspace_id, agent_name))
        text = ""
        if isinstance(found, AgentSoul) and found.workspace_id == workspace_id:
            current = found.current
            text = system_prompt_section(parse(current.document, current.source_path))
        with self._lock:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()  # bounded; the next runs read again
            self._kept[key] = (now + self.keep_s, text)
        return text
