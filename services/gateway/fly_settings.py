"""Spec 003's `GET` and `PUT /api/config/fly`: where a workspace's container workers run on Fly.io
(app, region, image, size) and the API token that reaches them.

The token is a credential like the others (`credentials.py`): sealed and recorded as
`workspace.secret_set` (`fly_api_token`), cleared by `null`, never read back beyond its last four
characters. The rest is the `fly` key of the workspace's config, replaced whole by a PUT and
checked as any config is (`check_config`), recorded as `workspace.config_updated`; both events
in one write.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, put
from litestar.params import JSONBody
from msgspec import UNSET

from contracts.credentials import SecretName
from contracts.fly import FLY_CONFIG_KEY, FlySettings, FlySettingsStatus, fly_config_of
from libs.domain.workspace import Workspace
from libs.readmodels import workspace_reads
from libs.secrets import last4, seal
from libs.web.auth import caller
from services.gateway.credentials import WITHOUT_KEY, sealing_key, status
from services.gateway.state import gateway_state
from services.gateway.workspace_settings import merge_diff
from services.gateway.workspaces import change_workspace, check_config

FLY = "/api/config/fly"


@get(FLY, opt=WITHOUT_KEY)
async def get_fly(request: Request[Any, Any, Any]) -> FlySettingsStatus:
    state, workspace_id = gateway_state(request), caller(request).workspace_id
    sealing_key(state)
    found = await workspace_reads.workspace(state.pool, workspace_id)
    stored = await workspace_reads.workspace_secrets(state.pool, workspace_id)
    return status_of(found["config"] if found else {}, stored)


@put(FLY, opt=WITHOUT_KEY)
async def put_fly(request: Request[Any, Any, Any], data: JSONBody[FlySettings]) -> FlySettingsStatus:
    """Replaces the app, region, image and size; a token given is stored, `null` clears it,
    left out it stays."""
    state, workspace_id = gateway_state(request), caller(request).workspace_id
    key = sealing_key(state)
    name = SecretName.FLY_API_TOKEN

    def apply(workspace: Workspace) -> tuple[dict[str, Any], dict[str, str]]:
        if data.api_token is None:
            workspace.clear_secret(name)
        elif data.api_token is not UNSET:
            workspace.set_secret(name, seal(key, workspace_id, name, data.api_token), last4(data.api_token))
        config = {**workspace.config, FLY_CONFIG_KEY: msgspec.to_builtins(data.config())}
        check_config(config)
        workspace.update_config(merge_diff(workspace.config, config), config)
        return config, {n: s.last4 for n, s in workspace.secrets.items()}

    config, stored = await change_workspace(state, workspace_id, apply)
    return status_of(config, stored)


def status_of(config: dict[str, Any], stored: dict[str, str]) -> FlySettingsStatus:
    fly = fly_config_of(config)
    return FlySettingsStatus(
        api_token=status(stored, SecretName.FLY_API_TOKEN),
        app=fly.app if fly else None,
        region=fly.region if fly else None,
        image=fly.image if fly else None,
        size=fly.size if fly else None,
    )


ROUTES = [get_fly, put_fly]
