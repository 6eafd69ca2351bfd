"""`POST /api/config/validate/fly`: does Fly take this token for this app? One real call of the
Machines API (`GET /v1/apps/{app}`, at `FLY_API_URL`) with the token and app in the body, or the
workspace's stored ones for those left out.

The answer is `validate/anthropic`'s: `{"valid": true}`, or `{"valid": false, "error": ...}`
saying whether Fly refused the token, does not know the app (or the token cannot see it), or
could not be reached; never the token.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, post
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, RequestBody
from msgspec import UNSET

from contracts.credentials import KeyValidity, SecretName
from contracts.fly import FlyToCheck, fly_config_of
from libs.config import Settings
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.fly.client import FlyClient, FlyError
from libs.secrets import SealError, unseal
from libs.web.auth import caller
from libs.web.bodies import decode_body
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS, register
from services.gateway.credentials import NO_SECRETS_KEY, sealing_key
from services.gateway.state import GatewayState, gateway_state

VALIDATE_FLY = "/api/config/validate/fly"
CHECK_TIMEOUT_S = 15.0
NO_STORED_TOKEN = 'the workspace stores no Fly API token: send {"apiToken": ...}, or store one with PUT /api/config/fly'
NO_STORED_APP = 'the workspace has no Fly app: send {"app": ...}, or set one with PUT /api/config/fly'


@post(
    VALIDATE_FLY,
    status_code=200,
    opt={
        ERRORS: {
            404: f"Nothing to check: {NO_STORED_TOKEN}; or {NO_STORED_APP}.",
            409: "The stored token does not open with SECRETS_KEY (it was changed since): store the token again.",
            503: f"The database cannot answer now, or (to check the stored token) {NO_SECRETS_KEY}.",
        }
    },
)
async def validate_fly(request: Request[Any, Any, Any]) -> KeyValidity:
    state = gateway_state(request)
    raw = await request.body()
    try:
        given = msgspec.convert(decode_body(raw), FlyToCheck) if raw.strip() else FlyToCheck()
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    token, app = given.api_token, given.app
    if token is UNSET or app is UNSET:
        workspace_id = caller(request).workspace_id
        found = await asyncio.to_thread(state.store.load, workspace_aggregate_id(workspace_id))
        workspace = found if isinstance(found, Workspace) else None
        if app is UNSET:
            app = stored_app(workspace)
        if token is UNSET:
            token = stored_token(state, workspace_id, workspace)
    return await check_fly(state.settings, token, app)


def stored_app(workspace: Workspace | None) -> str:
    fly = fly_config_of(workspace.config) if workspace is not None else None
    if fly is None:
        raise ApiError(404, "Not found", NO_STORED_APP)
    return fly.app


def stored_token(state: GatewayState, workspace_id: str, workspace: Workspace | None) -> str:
    """The workspace's Fly token as last stored (read from the log: one stored a moment ago is
    the one checked), opened."""
    stored = workspace.secrets.get(SecretName.FLY_API_TOKEN) if workspace is not None else None
    if stored is None:
        raise ApiError(404, "Not found", NO_STORED_TOKEN)
    try:
        return unseal(sealing_key(state), workspace_id, stored.name, stored.sealed)
    except SealError:
        raise ApiError(
            409,
            "unusable_token",
            "the stored Fly API token does not open with SECRETS_KEY (was it changed?): store it again",
        ) from None


async def check_fly(settings: Settings, token: str, app: str) -> KeyValidity:
    async with FlyClient(settings.fly_api_url, token, timeout_s=CHECK_TIMEOUT_S) as fly:
        try:
            await fly.get_app(app)
        except FlyError as exc:
            return KeyValidity(valid=False, error=why(exc, app))
    return KeyValidity(valid=True)


def why(exc: FlyError, app: str) -> str:
    # The client's message never holds the token: Fly's own words, masked.
    if exc.status is None:
        return exc.message  # not reached, or no answer in time, at the Machines API's URL
    if exc.unauthorized:
        return f"Fly refused the token (HTTP {exc.status}: {exc.message})"
    if exc.not_found:
        return f"Fly knows no app {app} that the token can reach (HTTP 404: {exc.message})"
    return f"Fly answered HTTP {exc.status}: {exc.message}"


def document(openapi: OpenAPI) -> None:
    """The route reads its body itself (it may have none): the document says what it takes."""
    schema = register(openapi, FlyToCheck)
    item = (openapi.paths or {})[VALIDATE_FLY]
    assert item.post is not None
    item.post.request_body = RequestBody(
        required=False,
        description="The token and app to check; each left out (or no body) is the workspace's stored one.",
        content={"application/json": OpenAPIMediaType(schema=schema)},
    )


ROUTES = [validate_fly]
