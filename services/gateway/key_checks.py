"""`POST /api/config/validate/anthropic`: does Anthropic take this key? One real call through the
official SDK that costs nothing (`messages.count_tokens`), to `ANTHROPIC_BASE_URL`, with the key
in the body or the workspace's stored one.

The answer is `{"valid": true}` or `{"valid": false, "error": ...}` with Anthropic's status and
message, the key masked out of it should the provider quote it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import msgspec
from litestar import Request, post
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, RequestBody
from msgspec import UNSET

from contracts.credentials import KeyToCheck, KeyValidity, SecretName
from contracts.tasks import DEFAULT_MODEL
from libs.config import Settings
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.observability.logs import REDACTED, redact
from libs.secrets import SealError, unseal
from libs.web.auth import caller
from libs.web.bodies import decode_body
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS, register
from services.gateway.credentials import NO_SECRETS_KEY, sealing_key
from services.gateway.state import GatewayState, gateway_state

VALIDATE_ANTHROPIC = "/api/config/validate/anthropic"
CHECK_TIMEOUT_S = 15.0
MAX_ERROR_CHARS = 500
NO_STORED_KEY = (
    'the workspace stores no Anthropic key: send {"apiKey": ...}, or store one with PUT '
    "/api/config/provider-credentials"
)


@post(
    VALIDATE_ANTHROPIC,
    status_code=200,
    opt={
        ERRORS: {
            404: NO_STORED_KEY,
            409: "The stored key does not open with SECRETS_KEY (it was changed since): store the key again.",
            503: f"The database cannot answer now, or (to check the stored key) {NO_SECRETS_KEY}.",
        }
    },
)
async def validate_anthropic(request: Request[Any, Any, Any]) -> KeyValidity:
    state = gateway_state(request)
    raw = await request.body()
    try:
        given = msgspec.convert(decode_body(raw), KeyToCheck) if raw.strip() else KeyToCheck()
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    key = await stored_key(state, caller(request).workspace_id) if given.api_key is UNSET else given.api_key
    return await check_anthropic(state.settings, key)


async def stored_key(state: GatewayState, workspace_id: str) -> str:
    """The workspace's Anthropic key as last stored, opened: read from the log, so a key stored
    a moment ago is the one checked."""
    key = sealing_key(state)
    found = await asyncio.to_thread(state.store.load, workspace_aggregate_id(workspace_id))
    stored = found.secrets.get(SecretName.ANTHROPIC_API_KEY) if isinstance(found, Workspace) else None
    if stored is None:
        raise ApiError(404, "Not found", NO_STORED_KEY)
    try:
        return unseal(key, workspace_id, stored.name, stored.sealed)
    except SealError:
        raise ApiError(
            400,
            "unusable_key",
            "the stored Anthropic key does not open with SECRETS_KEY (was it changed?): store it again",
        ) from None


async def check_anthropic(settings: Settings, api_key: str) -> KeyValidity:
    client = anthropic.AsyncAnthropic(
        api_key=api_key, base_url=settings.anthropic_base_url, max_retries=0, timeout=CHECK_TIMEOUT_S
    )
    try:
        await client.messages.count_tokens(model=DEFAULT_MODEL, messages=[{"role": "user", "content": "Hello"}])
    except anthropic.APIStatusError as exc:
        said = f"Anthropic answered HTTP {exc.status_code}: {provider_message(exc)}"
        return KeyValidity(valid=False, error=masked(said, api_key))
    except anthropic.APIConnectionError as exc:  # a timeout too
        why = "timed out" if isinstance(exc, anthropic.APITimeoutError) else "could not be reached"
        return KeyValidity(valid=False, error=f"Anthropic {why} at {client.base_url}")
    finally:
        await client.close()
    return KeyValidity(valid=True)


def provider_message(exc: anthropic.APIStatusError) -> str:
    """The message of Anthropic's error body (`{"type": "error", "error": {"message": ...}}`)."""
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else exc.message


def masked(text: str, api_key: str) -> str:
    return redact(text.replace(api_key, REDACTED))[:MAX_ERROR_CHARS]


def document(openapi: OpenAPI) -> None:
    """The route reads its body itself (it may have none): the document says what it takes."""
    schema = register(openapi, KeyToCheck)
    item = (openapi.paths or {})[VALIDATE_ANTHROPIC]
    assert item.post is not None
    item.post.request_body = RequestBody(
        required=False,
        description="The key to check; no body, or `{}`, checks the workspace's stored key.",
        content={"application/json": OpenAPIMediaType(schema=schema)},
    )


ROUTES = [validate_anthropic]
