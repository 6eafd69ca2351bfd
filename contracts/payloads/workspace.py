"""The payloads of a Workspace's events (owner: the gateway): `workspace.<event>` on the wire."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.payloads.shapes import Payload


class WorkspaceCreated(Payload, frozen=True, kw_only=True):
    name: str


class WorkspaceKeyIssued(Payload, frozen=True, kw_only=True):
    key_id: str  # 16 hex digits
    key_hash: str  # SHA-256 (hex) of the key's secret part: private to the store and the bus
    label: str | None


class WorkspaceKeyRevoked(Payload, frozen=True, kw_only=True):
    key_id: str


class WorkspaceConfigUpdated(Payload, frozen=True, kw_only=True):
    # A workspace's config is open: the merge patch as sent, and the whole config it led to.
    changes: dict[str, Any]
    config: dict[str, Any]


class WorkspacePurged(Payload, frozen=True, kw_only=True):
    purged: list[str]
    # Unfinished when the purge was asked: tasks, and orchestration runs (the task their agent
    # steps' Runs name), stopped alike.
    stopped_tasks: list[str] = []
    closed_questions: list[str] = []  # open then


class WorkspaceSecretSet(Payload, frozen=True, kw_only=True):
    name: str  # `contracts.credentials.SecretName`
    sealed: str  # AES-256-GCM under SECRETS_KEY (`libs.secrets`): private to the store and the bus
    last4: str  # all a read shows of it


class WorkspaceSecretCleared(Payload, frozen=True, kw_only=True):
    name: str


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "workspace.created": WorkspaceCreated,
    "workspace.key_issued": WorkspaceKeyIssued,
    "workspace.key_revoked": WorkspaceKeyRevoked,
    "workspace.config_updated": WorkspaceConfigUpdated,
    "workspace.purged": WorkspacePurged,
    "workspace.secret_set": WorkspaceSecretSet,
    "workspace.secret_cleared": WorkspaceSecretCleared,
}
