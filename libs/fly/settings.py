"""A workspace's Fly settings with its token opened: what starting and destroying its container
workers needs (`FlyAccess`), read from the Workspace aggregate in the log.

The settings are the `fly` key of the workspace's config and its `fly_api_token` secret, sealed
with SECRETS_KEY (`PUT /api/config/fly`). Like the providers' keys (`libs.provider_keys`), they
are kept per workspace once read, and forgotten when the workspace's secrets or config change
(`workspace.secret_set`, `secret_cleared`, `config_updated`, followed on the bus from the start of
the process), or after `KEEP_S` in case the bus did not bring the news.
"""

from __future__ import annotations

import logging

import msgspec

from contracts.credentials import SecretName
from contracts.fly import FlySize, fly_config_of
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.secrets import SealError, unseal
from libs.workspace_kept import KEEP_S, WorkspaceKept

log = logging.getLogger(__name__)

CHANGES = frozenset({"secret_set", "secret_cleared", "config_updated"})


class FlyAccess(msgspec.Struct, frozen=True):
    """Where a workspace's machines run, and the token that reaches them."""

    api_token: str
    app: str
    region: str
    image: str
    size: FlySize

    def __repr__(self) -> str:  # never the token
        return f"FlyAccess(app={self.app!r}, region={self.region!r}, image={self.image!r}, size={self.size.value!r})"


class FlyTokenUnusable(Exception):
    """The workspace stores a Fly token this process cannot open (no SECRETS_KEY, or another)."""


def fly_access(workspace_id: str, workspace: Workspace | None, secrets_key: bytes | None) -> FlyAccess | None:
    """The workspace's Fly settings and token, opened; None unless it has both."""
    if workspace is None:
        return None
    config = fly_config_of(workspace.config)
    stored = workspace.secrets.get(SecretName.FLY_API_TOKEN)
    if config is None or stored is None:
        return None
    if secrets_key is None:
        raise FlyTokenUnusable(
            "the workspace stores a Fly API token, and this service has no SECRETS_KEY to open it: "
            "set SECRETS_KEY (the gateway's) in its environment"
        )
    try:
        token = unseal(secrets_key, workspace_id, stored.name, stored.sealed)
    except SealError:
        raise FlyTokenUnusable(
            "the workspace's stored Fly API token does not open with SECRETS_KEY (was it changed?): "
            "store it again with PUT /api/config/fly"
        ) from None
    return FlyAccess(api_token=token, app=config.app, region=config.region, image=config.image, size=config.size)


class FlySettingsReader(WorkspaceKept[FlyAccess | None]):
    """The workspaces' `FlyAccess`, kept per workspace. A token that cannot be opened counts as
    none (the reason is logged, without the token)."""

    def __init__(self, store: EventStore, secrets_key: bytes | None, keep_s: float = KEEP_S) -> None:
        super().__init__(store, CHANGES, keep_s)
        self.secrets_key = secrets_key

    def opened(self, workspace_id: str, workspace: Workspace | None) -> FlyAccess | None:
        """The workspace's Fly settings and token; None when it has not both (or the token does
        not open)."""
        try:
            return fly_access(workspace_id, workspace, self.secrets_key)
        except FlyTokenUnusable as exc:
            log.warning("workspace %s: %s", workspace_id, exc)
            return None
