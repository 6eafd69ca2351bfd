"""Spec 003's `GET` and `PUT /api/config`: the workspace's settings (`commandPrefix`,
`defaultAgentConfig`, `allowedRepositories`).

They are three keys of the workspace's config, the one spec 001's `.../orchestration/config`
shows: a PUT replaces those three (a key left out goes back to its default) and leaves the rest,
checked as a PATCH of spec 001 is (`check_config`), and recorded as `workspace.config_updated`
with the merge patch that leads from the config before to the one after.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, put
from litestar.params import JSONBody

from contracts.workspace_settings import SETTINGS_KEYS, WorkspaceSettings
from libs.domain.workspace import Workspace
from libs.readmodels import workspace_reads
from libs.web.auth import caller
from libs.web.errors import ApiError
from services.gateway.state import gateway_state
from services.gateway.workspaces import change_workspace, check_config

SETTINGS = "/api/config"


@get(SETTINGS)
async def get_settings(request: Request[Any, Any, Any]) -> WorkspaceSettings:
    found = await workspace_reads.workspace(gateway_state(request).pool, caller(request).workspace_id)
    return settings_of(found["config"] if found else {})


@put(SETTINGS)
async def put_settings(request: Request[Any, Any, Any], data: JSONBody[WorkspaceSettings]) -> WorkspaceSettings:
    """Replaces the three settings: what the body gives, the defaults for what it leaves out."""
    given = await request.json()  # as sent: `data` took `"maxTokens": "100"` for 100, a config may not
    try:
        msgspec.convert(given, WorkspaceSettings, strict=True)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None

    def apply(workspace: Workspace) -> dict[str, Any]:
        kept = {k: v for k, v in workspace.config.items() if k not in SETTINGS_KEYS}
        config = {**kept, **{k: given[k] for k in SETTINGS_KEYS if k in given}}
        check_config(config)
        workspace.update_config(merge_diff(workspace.config, config), config)
        return config

    workspace_id = caller(request).workspace_id
    return settings_of(await change_workspace(gateway_state(request), workspace_id, apply))


def settings_of(config: dict[str, Any]) -> WorkspaceSettings:
    return msgspec.convert({k: config[k] for k in SETTINGS_KEYS if k in config}, WorkspaceSettings)


def merge_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7396) that turns `before` into `after`: what a config event
    records as its change, whichever route made it. (`after` holds no null: null removes.)"""
    patch: dict[str, Any] = {key: None for key in before if key not in after}
    for key, value in after.items():
        if key not in before:
            patch[key] = value
        elif before[key] != value:
            nested = isinstance(before[key], dict) and isinstance(value, dict)
            patch[key] = merge_diff(before[key], value) if nested else value
    return patch


ROUTES = [get_settings, put_settings]
