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

import logging

from contracts.credentials import PROVIDERS, provider_secret
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.llm.providers import OwnKeys
from libs.secrets import SealError, unseal
from libs.workspace_kept import KEEP_S, WorkspaceKept

log = logging.getLogger(__name__)

SECRET_EVENTS = frozenset({"secret_set", "secret_cleared"})


class ProviderKeys(WorkspaceKept[OwnKeys]):
    def __init__(self, store: EventStore, secrets_key: bytes | None, keep_s: float = KEEP_S) -> None:
        super().__init__(store, SECRET_EVENTS, keep_s)
        self.secrets_key = secrets_key

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
