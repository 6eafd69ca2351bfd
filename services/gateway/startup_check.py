"""`GET /api/startup/check`: what this deployment needs, checked now. The database (a query),
NATS (connected, and answering a ping), each other service's `/health` (their URLs come from
`SERVICE_HEALTH_URLS`: the gateway has no other way to find a service that owns no command
subject, such as the stream or the cost ledger), each provider's key (from the environment or
stored by the caller's workspace), the GitHub App and sign-in settings, `SECRETS_KEY`, the
webhook secret, and the caller's workspace's Fly settings (container workers). Each item `ok`,
`missing` or `error`, with how to fix it; never a value.

It answers a caller with a workspace key or the sign-in cookie, not anyone: which settings are
missing tells an attacker where to look.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from litestar import Request, get

from contracts.credentials import SecretName, provider_secret
from contracts.fly import fly_config_of
from contracts.startup import StartupCheck, StartupItem
from libs.readmodels import workspace_reads
from libs.secrets import MAKE_ONE
from libs.web.auth import caller
from services.gateway.signin_settings import PURPOSES, statuses
from services.gateway.state import GatewayState, gateway_state

CHECK_TIMEOUT_S = 2.0
SERVICES_FIX = (
    "set SERVICE_HEALTH_URLS on the gateway to each service's health URL, "
    "e.g. planner=http://planner:8080/health,executor=http://executor:8080/health (`./just up` sets it)"
)


def _item(name: str, kind: Any, ok: bool, detail: str, fix: str, required: bool = True) -> StartupItem:
    status = "ok" if ok else "missing"
    return StartupItem(name=name, kind=kind, status=status, required=required, detail=detail, fix=None if ok else fix)


async def _database(state: GatewayState) -> StartupItem:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            async with state.pool.connection() as conn:
                await conn.execute("SELECT 1")
    except Exception as exc:  # any failure is the answer
        return StartupItem(
            name="database",
            kind="dependency",
            status="error",
            required=True,
            detail=f"PostgreSQL did not answer a query: {type(exc).__name__}",
            fix="check DATABASE_URL and that PostgreSQL is running",
        )
    return _item("database", "dependency", True, "PostgreSQL answered a query", "")


async def _nats(state: GatewayState) -> StartupItem:
    try:
        answered = state.nc.is_connected and await state.broker.ping(timeout=CHECK_TIMEOUT_S)
    except Exception:  # a ping that fails is a NATS that does not answer
        answered = False
    if answered:
        return _item("nats", "dependency", True, "connected to NATS, which answered a ping", "")
    return StartupItem(
        name="nats",
        kind="dependency",
        status="error",
        required=True,
        detail="NATS is not connected or did not answer a ping",
        fix="check NATS_URL and that the NATS server (JetStream on) is running",
    )


async def _service(client: httpx.AsyncClient, name: str, url: str) -> StartupItem:
    try:
        answer = await client.get(url)
        healthy = answer.status_code == 200
        detail = f"{url} answered {answer.status_code}"
    except httpx.HTTPError as exc:
        healthy, detail = False, f"{url} could not be reached: {type(exc).__name__}"
    return StartupItem(
        name=f"service:{name}",
        kind="service",
        status="ok" if healthy else "error",
        required=True,
        detail=detail,
        fix=None
        if healthy
        else f"start the {name} service (orchestrator-{name}), or correct its URL in SERVICE_HEALTH_URLS",
    )


async def _services(state: GatewayState) -> list[StartupItem]:
    urls = state.settings.service_health_urls
    if not urls:
        return [_item("services", "service", False, "the other services' health URLs are not known", SERVICES_FIX)]
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_S) as client:
        return list(await asyncio.gather(*(_service(client, n, u) for n, u in sorted(urls.items()))))


async def _providers(request: Request[Any, Any, Any], state: GatewayState) -> list[StartupItem]:
    stored = await workspace_reads.workspace_secrets(state.pool, caller(request).workspace_id)
    environment = {"anthropic": state.settings.anthropic_api_key, "openai": state.settings.openai_api_key}
    found = []
    for provider, variable in (("anthropic", "ANTHROPIC_API_KEY"), ("openai", "OPENAI_API_KEY")):
        if provider_secret(provider) in stored:
            detail = f"your workspace stores its own {provider} key"
        elif environment[provider]:
            detail = f"{variable} is set in the environment"
        else:
            detail = f"no {provider} key: neither {variable} nor one stored by your workspace"
        has_key = bool(environment[provider]) or provider_secret(provider) in stored
        fix = f"set {variable} for the executor and gateway, or PUT /api/config/provider-credentials"
        # One provider is enough for agents to run: neither alone is required.
        found.append(_item(variable, "provider", has_key, detail, fix, required=False))
    return found


def _settings(state: GatewayState) -> list[StartupItem]:
    settings = state.settings
    found = []
    for status in statuses(settings):
        detail = PURPOSES[status.name]
        if status.status == "configured":
            found.append(_item(status.name, "setting", True, detail, ""))
        else:
            problem = f" ({status.problem})" if status.problem else ""
            found.append(
                StartupItem(
                    name=status.name,
                    kind="setting",
                    status="missing" if status.status == "missing" else "error",
                    required=True,
                    detail=detail,
                    fix=f"set {status.name}{problem}; see GET /api/auth/diagnostics and the README's GitHub sections",
                )
            )
    found.append(
        _item(
            "SECRETS_KEY",
            "setting",
            settings.secrets_key is not None,
            "seals the credentials workspaces store",
            f"set SECRETS_KEY to 32 random bytes in base64 ({MAKE_ONE}); `./just up` keeps one in .data/secrets-key",
        )
    )
    # GITHUB_WEBHOOK_SECRET is one of the sign-in settings above (`signin_settings`).
    return found


async def _fly(request: Request[Any, Any, Any], state: GatewayState) -> StartupItem:
    """Container workers: the caller's workspace has a Fly token and app, or says which it lacks."""
    workspace_id = caller(request).workspace_id
    found = await workspace_reads.workspace(state.pool, workspace_id)
    stored = await workspace_reads.workspace_secrets(state.pool, workspace_id)
    lacking = [
        what
        for what, there in (
            ("Fly API token", SecretName.FLY_API_TOKEN in stored),
            ("Fly app", fly_config_of(found["config"] if found else {}) is not None),
        )
        if not there
    ]
    detail = (
        "your workspace stores a Fly API token and app: tasks on the `fly` runner run in Fly Machines"
        if not lacking
        else f"container workers on Fly.io: your workspace has no {' and no '.join(lacking)}"
    )
    fix = (
        "PUT /api/config/fly with the API token, app, region, image and size, and check them with POST "
        "/api/config/validate/fly; FLY_API_URL is the Machines API (https://api.machines.dev unless set). "
        "Without them a task on the `fly` runner cannot start; the others run in the executor"
    )
    # Agents run without Fly: not required.
    return _item("fly", "setting", not lacking, detail, fix, required=False)


def overall(items: list[StartupItem]) -> Any:
    required = [item.status for item in items if item.required]
    return "error" if "error" in required else "missing" if "missing" in required else "ok"


@get("/api/startup/check")
async def startup_check(request: Request[Any, Any, Any]) -> StartupCheck:
    """Each required setting and dependency: `ok`, `missing` or `error`, and how to fix it."""
    state = gateway_state(request)
    database, nats, services, providers, fly = await asyncio.gather(
        _database(state), _nats(state), _services(state), _providers(request, state), _fly(request, state)
    )
    items = [database, nats, *services, *providers, *_settings(state), fly]
    return StartupCheck(status=overall(items), checks=items)


ROUTES = [startup_check]
