"""The providers' keys workspaces store, opened for the agents that call models with them.

A workspace's agents call a provider with the workspace's own key when it stores one
(`PUT /api/config/provider-credentials`), with the environment's otherwise. The keys are read
from the Workspace aggregate, in the log (a key stored a moment ago is there, where a read model
may lag), opened with SECRETS_KEY, and kept per workspace: a run starts without a read in the
common case, and a model call never waits for one. A workspace's `workspace.secret_set` or
`workspace.secret_cleared`, followed on the bus by every process from its start, drops what is
kept of it, so the next run reads the change; what is kept is read again after `KEEP_S` anyway,
in case the bus did not bring the news.
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.msg import Msg
from nats.js import JetStreamContext

from contracts.credentials import PROVIDERS, provider_secret
from libs.bus.jetstream import follow_from_now
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.eventstore.store import EventStore
from libs.llm.providers import OwnKeys
from libs.secrets import SealError, unseal

log = logging.getLogger(__name__)

WORKSPACE_EVENTS = "events.*.workspace.>"
SECRET_EVENTS = frozenset({"secret_set", "secret_cleared"})
KEEP_S = 60.0
MAX_KEPT = 4096


class ProviderKeys:
    def __init__(self, store: EventStore, secrets_key: bytes | None, keep_s: float = KEEP_S) -> None:
        self.store = store
        self.secrets_key = secrets_key
        self.keep_s = keep_s
        self._kept: dict[str, tuple[float, OwnKeys]] = {}
        # Bumped when a workspace's secrets change: a read begun before the change is not kept.
        self._changes: dict[str, int] = {}

    async def follow(self, js: JetStreamContext) -> None:
        await follow_from_now(js, WORKSPACE_EVENTS, self._on_message)

    async def _on_message(self, msg: Msg) -> None:
        # `events.<workspace>.workspace.<event>`: the subject says all, nothing to decode.
        _, workspace_id, _, event = msg.subject.split(".", 3)
        if event in SECRET_EVENTS:
            self.forget(workspace_id)

    def forget(self, workspace_id: str) -> None:
        self._kept.pop(workspace_id, None)
        self._changes[workspace_id] = self._changes.get(workspace_id, 0) + 1

    async def of(self, workspace_id: str) -> OwnKeys:
        """The workspace's own keys, opened. Reads the log when nothing current is kept."""
        kept = self._kept.get(workspace_id)
        if kept is not None and kept[0] > time.monotonic():
            return kept[1]
        changes = self._changes.get(workspace_id, 0)
        found = await asyncio.to_thread(self.store.load, workspace_aggregate_id(workspace_id))
        own = self.opened(workspace_id, found if isinstance(found, Workspace) else None)
        if self._changes.get(workspace_id, 0) == changes:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()  # bounded; the next runs read again
            self._kept[workspace_id] = (time.monotonic() + self.keep_s, own)
        return own

    def opened(self, workspace_id: str, workspace: Workspace | None) -> OwnKeys:
        keys: dict[str, str] = {}
        problems: dict[str, str] = {}
        for provider in PROVIDERS:
            stored = workspace.secrets.get(provider_secret(provider)) if workspace is not None else None
            if stored is None:
                continue
            if self.secrets_key is None:
                problems[provider] = (
                    f"the workspace stores its own {provider} key, and this service has no SECRETS_KEY "
                    "to open it: set SECRETS_KEY (the gateway's) in its environment"
                )
                continue
            try:
                keys[provider] = unseal(self.secrets_key, workspace_id, stored.name, stored.sealed)
            except SealError:
                log.warning("workspace %s: its stored %s key does not open with SECRETS_KEY", workspace_id, provider)
                problems[provider] = (
                    f"the workspace's stored {provider} key does not open with this service's SECRETS_KEY "
                    "(was SECRETS_KEY changed?): store the key again"
                )
        return OwnKeys(workspace_id, keys, problems)
