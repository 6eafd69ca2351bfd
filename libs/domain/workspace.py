"""Workspace: a team's space, its API keys, its orchestration config and its stored
credentials; owned by the gateway.

Keys are shown once, when issued; the store keeps only a SHA-256 of their secret part (random
256 bits, so a plain hash is enough). A key is `ak_<key id>_<secret>`: the id finds the record
without a scan, the secret proves it. Credentials (a GitHub token, the providers' keys) arrive
sealed (`libs.secrets`): the aggregate keeps them as sealed, with the last four characters a
read may show.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from contracts.payloads.workspace import (
    WorkspaceConfigUpdated,
    WorkspaceCreated,
    WorkspaceKeyIssued,
    WorkspaceKeyRevoked,
    WorkspacePurged,
    WorkspaceSecretCleared,
    WorkspaceSecretSet,
)
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition

# A workspace id is one NATS subject token and one URL path segment.
WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
KEY_PREFIX = "ak"


def workspace_aggregate_id(workspace_id: str) -> UUID:
    return derived_id("workspace", workspace_id)


def config_of(loaded: Mapping[UUID, Any], workspace_id: str) -> dict[str, Any]:
    """The workspace's config among aggregates loaded from the log: the services that act on a
    setting read it here, never from the read model, which can lag a change just made."""
    workspace = loaded.get(workspace_aggregate_id(workspace_id))
    return workspace.config if isinstance(workspace, Workspace) else {}


def new_workspace_id() -> str:
    return f"ws_{secrets.token_hex(12)}"


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    if prefix != KEY_PREFIX or not re.fullmatch(r"[0-9a-f]{16}", key_id) or len(secret) < 32:
        return None
    return key_id, secret


class Workspace(WorkspaceAggregate):
    class Created(WorkspaceAggregate.Created):
        payload: WorkspaceCreated

    def __init__(self, workspace_id: str, payload: WorkspaceCreated) -> None:
        self.workspace_id = workspace_id
        self.name = payload.name
        self.keys: dict[str, str] = {}  # key id -> "active" | "revoked"
        self.config: dict[str, Any] = {}
        self.purges = 0
        self.secrets: dict[str, WorkspaceSecretSet] = {}  # name -> as last set (sealed)

    @classmethod
    def create(cls, workspace_id: str, name: str) -> Workspace:
        created = WorkspaceCreated(name=name)
        return cls._create(
            cls.Created, id=workspace_aggregate_id(workspace_id), workspace_id=workspace_id, payload=created
        )

    def issue_key(self, label: str | None) -> str:
        """A new key; returns it whole. Only its hash is recorded."""
        key_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        self.emit(self.KeyIssued, WorkspaceKeyIssued(key_id=key_id, key_hash=key_hash(secret), label=label))
        return f"{KEY_PREFIX}_{key_id}_{secret}"

    class KeyIssued(WorkspaceAggregate.Event):
        payload: WorkspaceKeyIssued

        def apply(self, workspace: Workspace) -> None:
            workspace.keys[self.payload.key_id] = "active"

    def revoke_key(self, key_id: str) -> None:
        if key_id not in self.keys:
            raise IllegalTransition(f"workspace {self.workspace_id} has no key {key_id}")
        if self.keys[key_id] == "active":
            self.emit(self.KeyRevoked, WorkspaceKeyRevoked(key_id=key_id))

    class KeyRevoked(WorkspaceAggregate.Event):
        payload: WorkspaceKeyRevoked

        def apply(self, workspace: Workspace) -> None:
            workspace.keys[self.payload.key_id] = "revoked"

    def update_config(self, changes: dict[str, Any], config: dict[str, Any]) -> None:
        """Records `changes` (a merge patch) and the config they lead to: a replay needs no
        merge rules, and an auditor sees what was asked."""
        if config != self.config:
            self.emit(self.ConfigUpdated, WorkspaceConfigUpdated(changes=changes, config=config))

    class ConfigUpdated(WorkspaceAggregate.Event):
        payload: WorkspaceConfigUpdated

        def apply(self, workspace: Workspace) -> None:
            workspace.config = self.payload.config

    def purge(self, purged: list[str], stopped_tasks: list[str], closed_questions: list[str]) -> None:
        """Clears the workspace's state from the read models (the log keeps it all), stops its
        unfinished tasks and closes its open questions; config and keys stay."""
        purged_event = WorkspacePurged(purged=purged, stopped_tasks=stopped_tasks, closed_questions=closed_questions)
        self.emit(self.Purged, purged_event)

    class Purged(WorkspaceAggregate.Event):
        # `stopped_tasks`: unfinished when the purge was asked, the planner cancels them (and
        # fails the orchestration runs among them);
        # `closed_questions`: open then, review expires them, so no run waits on them.
        payload: WorkspacePurged

        def apply(self, workspace: Workspace) -> None:
            workspace.purges += 1

    def set_secret(self, name: str, sealed: str, last4: str) -> None:
        """Records a credential, sealed by the caller for this workspace and name: the log never
        holds it in clear. Each setting is recorded, the same value again too (a sealed value
        cannot be compared without opening it)."""
        self.emit(self.SecretSet, WorkspaceSecretSet(name=name, sealed=sealed, last4=last4))

    class SecretSet(WorkspaceAggregate.Event):
        payload: WorkspaceSecretSet

        def apply(self, workspace: Workspace) -> None:
            workspace.secrets[self.payload.name] = self.payload

    def clear_secret(self, name: str) -> None:
        if name in self.secrets:
            self.emit(self.SecretCleared, WorkspaceSecretCleared(name=name))

    class SecretCleared(WorkspaceAggregate.Event):
        payload: WorkspaceSecretCleared

        def apply(self, workspace: Workspace) -> None:
            workspace.secrets.pop(self.payload.name, None)
