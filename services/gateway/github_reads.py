"""Reading GitHub as the caller: whose token (the signed-in user's, from the cookie; or, for a
workspace key, the workspace's stored `github_token`), and conditional reads through githubkit
that answer a repeated read from the gateway's `EtagCache` when GitHub says `304 Not Modified`
(which costs no rate limit).

GitHub's refusals in the product's words: a 404 is `NotFound` for the route to name; the token
refused is 401 for a sign-in (sign in again) and 409 for a stored token (store another); a 403
over the rate limit is 429 with its reset time; another 403 is 403 with GitHub's reason; GitHub
away is 502. No token ever reaches a message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import msgspec
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import GitHubException, RequestFailed
from litestar import Request

from contracts.credentials import SecretName
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.secrets import SealError, unseal
from libs.web.auth import caller
from libs.web.errors import ApiError
from libs.web.session import signed_in
from services.gateway.etag_cache import cache_key
from services.gateway.github import NotFound
from services.gateway.state import GatewayState, gateway_state

T = TypeVar("T")

NO_STORED_TOKEN = (
    "this workspace has no GitHub token: store one with PUT /api/config/credentials "
    '{"githubToken": "..."}, or sign in with GitHub (GET /api/auth/github) and call with the sign-in cookie'
)


@dataclass(frozen=True)
class GitHubCaller:
    token: str
    signed_in: bool  # the cookie's user; else the workspace's stored token


class _Unused(msgspec.Struct, frozen=True):
    message: str | None = None


async def github_caller(request: Request[Any, Any, Any]) -> GitHubCaller:
    """The token the caller reads GitHub with."""
    who, state = caller(request), gateway_state(request)
    if who.key_id is None:
        user = signed_in(request)
        if user is None:  # its time ran out since the guard read it
            raise ApiError(401, "unauthorized", "the sign-in has ended: sign in again at GET /api/auth/github")
        return GitHubCaller(user.token, signed_in=True)
    workspace = await asyncio.to_thread(state.store.load, workspace_aggregate_id(who.workspace_id))
    stored = workspace.secrets.get(SecretName.GITHUB_TOKEN) if isinstance(workspace, Workspace) else None
    if stored is None:
        raise ApiError(409, "github_token_missing", NO_STORED_TOKEN)
    if state.settings.secrets_key is None:
        raise ApiError(
            503,
            "secrets_key_missing",
            "the workspace's GitHub token cannot be opened: start the gateway with SECRETS_KEY set",
        )
    try:
        token = unseal(state.settings.secrets_key, who.workspace_id, stored.name, stored.sealed)
    except SealError:
        raise ApiError(
            409,
            "github_token_unusable",
            "the workspace's stored GitHub token does not open with this SECRETS_KEY (was it changed?): "
            "store it again with PUT /api/config/credentials",
        ) from None
    return GitHubCaller(token, signed_in=False)


def _reset_iso(response: httpx.Response) -> str:
    reset = response.headers.get("x-ratelimit-reset", "")
    return datetime.fromtimestamp(int(reset), UTC).isoformat() if reset.isdigit() else "soon"


def _refusal(response: httpx.Response, who: GitHubCaller, doing: str) -> ApiError | NotFound:
    status = response.status_code
    if status == 404:
        return NotFound()
    if status == 401:
        if who.signed_in:
            return ApiError(401, "unauthorized", f"GitHub refused your sign-in to {doing}: sign in again")
        return ApiError(
            409,
            "github_token_refused",
            f"GitHub refused the workspace's stored token to {doing}: "
            "store a valid one with PUT /api/config/credentials",
        )
    if status in (403, 429) and (response.headers.get("x-ratelimit-remaining") == "0" or status == 429):
        return ApiError(
            429, "github_rate_limited", f"GitHub's rate limit for this token is used up until {_reset_iso(response)}"
        )
    if status == 403:
        try:
            reason = msgspec.json.decode(response.content, type=_Unused).message
        except msgspec.DecodeError:
            reason = None
        return ApiError(403, "github_forbidden", f"GitHub refused to let this token {doing}: {reason or 'forbidden'}")
    return ApiError(502, "github_unavailable", f"GitHub answered {status} to {doing}")


@contextlib.contextmanager
def _faults(doing: str) -> Iterator[None]:
    try:
        yield
    except (GitHubException, httpx.HTTPError) as exc:
        raise ApiError(
            502, "github_unavailable", f"GitHub could not be reached to {doing}: {type(exc).__name__}"
        ) from None


@contextlib.asynccontextmanager
async def reading(state: GatewayState, who: GitHubCaller) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A `read(path, shape, doing, params=None)` for one request, over one githubkit client."""
    settings, cache = state.settings, state.github_cache
    client = GitHub(
        TokenAuthStrategy(who.token),
        base_url=settings.github_api_url,
        timeout=settings.github_timeout_s,
        http_cache=False,  # ours is per token digest and bounded (`EtagCache`)
        auto_retry=False,
    )

    async def read(path: str, shape: type[T], doing: str, params: dict[str, Any] | None = None) -> T:
        url = f"{path}?{urlencode(sorted(params.items()))}" if params else path
        key = cache_key(who.token, url)
        cached = cache.get(key)
        headers = {"If-None-Match": cached.etag} if cached else {}
        with _faults(doing):
            try:
                response = await client.arequest("GET", url, headers=headers)
            except RequestFailed as exc:
                raise _refusal(exc.response.raw_response, who, doing) from None
        if response.status_code == 304 and cached is not None:
            body = cached.body
        else:
            body = response.content
            etag = response.headers.get("etag")
            if etag:
                cache.put(key, etag, body)
        try:
            return msgspec.json.decode(body, type=shape)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            cache.drop(key)
            raise ApiError(
                502, "github_unavailable", f"GitHub answered {doing} in an unexpected shape: {exc}"
            ) from None

    async with client:
        yield read
