"""Spec 003's credentials: a workspace's GitHub token and provider keys, written and never read
back (`PUT /api/config/credentials`, `GET` and `PUT /api/config/provider-credentials`), and where
each provider's key comes from (`GET /api/config/providers`).

A credential is sealed here (`libs.secrets`, bound to the workspace and its name) before it is
recorded, as `workspace.secret_set`; `null` records `workspace.secret_cleared`. A read shows
whether one is stored and its last four characters (`rm_workspace_secrets`). Without
`SECRETS_KEY` nothing can be sealed or opened: these routes answer 503 saying what to set.
"""

from __future__ import annotations

import functools
from typing import Any

from litestar import Request, get, put
from litestar.params import JSONBody
from msgspec import UNSET

from contracts.credentials import (
    NOT_CONFIGURED,
    PROVIDERS,
    CredentialStatus,
    GitHubCredentials,
    GitHubCredentialsStatus,
    KeySource,
    ProviderCredentials,
    ProviderCredentialsStatus,
    ProviderInfo,
    ProvidersInfo,
    SecretName,
    provider_secret,
)
from libs.domain.workspace import Workspace
from libs.pricing import PriceTable, models_by_provider
from libs.readmodels import workspace_reads
from libs.secrets import MAKE_ONE, last4, seal
from libs.web.auth import caller
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from services.gateway.state import GatewayState, gateway_state
from services.gateway.workspaces import change_workspace

NO_SECRETS_KEY = (
    "credentials cannot be stored or used: start the gateway and the executor with SECRETS_KEY set "
    f"to 32 random bytes in base64 (make one with {MAKE_ONE}); `./just up` makes one itself"
)
WITHOUT_KEY = {ERRORS: {503: f"The database cannot answer now, or SECRETS_KEY is not set ({NO_SECRETS_KEY})."}}


def sealing_key(state: GatewayState) -> bytes:
    if state.settings.secrets_key is None:
        raise ApiError(503, "secrets_key_missing", NO_SECRETS_KEY)
    return state.settings.secrets_key


async def store_secrets(request: Request[Any, Any, Any], changes: dict[SecretName, str | None]) -> dict[str, str]:
    """Seals and records each credential given (None clears it) in one write; the workspace's
    stored credentials after it, as their last four characters by name."""
    state, workspace_id = gateway_state(request), caller(request).workspace_id
    key = sealing_key(state)
    if not changes:
        return await workspace_reads.workspace_secrets(state.pool, workspace_id)

    def apply(workspace: Workspace) -> dict[str, str]:
        for name, value in changes.items():
            if value is None:
                workspace.clear_secret(name)
            else:
                workspace.set_secret(name, seal(key, workspace_id, name, value), last4(value))
        return {name: stored.last4 for name, stored in workspace.secrets.items()}

    return await change_workspace(state, workspace_id, apply)


def status(stored: dict[str, str], name: SecretName) -> CredentialStatus:
    found = stored.get(name)
    return NOT_CONFIGURED if found is None else CredentialStatus(configured=True, last4=found)


def providers_status(stored: dict[str, str]) -> ProviderCredentialsStatus:
    return ProviderCredentialsStatus(
        anthropic=status(stored, SecretName.ANTHROPIC_API_KEY), openai=status(stored, SecretName.OPENAI_API_KEY)
    )


@put("/api/config/credentials", opt=WITHOUT_KEY)
async def put_credentials(
    request: Request[Any, Any, Any], data: JSONBody[GitHubCredentials]
) -> GitHubCredentialsStatus:
    """The GitHub token: a token is stored, `null` clears it; left out, nothing changes."""
    changes = {} if data.github_token is UNSET else {SecretName.GITHUB_TOKEN: data.github_token}
    stored = await store_secrets(request, changes)
    return GitHubCredentialsStatus(github_token=status(stored, SecretName.GITHUB_TOKEN))


@get("/api/config/provider-credentials", opt=WITHOUT_KEY)
async def get_provider_credentials(request: Request[Any, Any, Any]) -> ProviderCredentialsStatus:
    state = gateway_state(request)
    sealing_key(state)
    return providers_status(await workspace_reads.workspace_secrets(state.pool, caller(request).workspace_id))


@put("/api/config/provider-credentials", opt=WITHOUT_KEY)
async def put_provider_credentials(
    request: Request[Any, Any, Any], data: JSONBody[ProviderCredentials]
) -> ProviderCredentialsStatus:
    """Each provider given: its key stored, or cleared by `"apiKey": null`; the others stay."""
    given = {provider: getattr(data, provider) for provider in PROVIDERS}
    changes = {provider_secret(p): key.api_key for p, key in given.items() if key is not UNSET}
    return providers_status(await store_secrets(request, changes))


@get("/api/config/providers")
async def get_providers(request: Request[Any, Any, Any]) -> ProvidersInfo:
    """Each provider: where the workspace's agents get its key, and the models priced for it."""
    state = gateway_state(request)
    stored = await workspace_reads.workspace_secrets(state.pool, caller(request).workspace_id)
    environment = {"anthropic": state.settings.anthropic_api_key, "openai": state.settings.openai_api_key}
    models = known_models()

    def info(provider: str) -> ProviderInfo:
        if provider_secret(provider) in stored:
            source = KeySource.WORKSPACE
        else:
            source = KeySource.ENVIRONMENT if environment[provider] else KeySource.NONE
        return ProviderInfo(key_source=source, models=models.get(provider, []))

    return ProvidersInfo(anthropic=info("anthropic"), openai=info("openai"))


@functools.cache
def known_models() -> dict[str, list[str]]:
    # The cost-ledger's table (its defaults and PRICE_TABLE_* overrides): the models it can price.
    return models_by_provider(PriceTable.from_env())


ROUTES = [put_credentials, get_provider_credentials, put_provider_credentials, get_providers]
