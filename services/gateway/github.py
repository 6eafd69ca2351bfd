"""The gateway's GitHub calls for sign-in and installations: the OAuth code exchange (at
`GITHUB_WEB_URL`), and through githubkit the signed-in user and its installations (its token) and
an installation as the App sees it (the App's JWT).

Only the fields read are decoded, with msgspec, as the executor does. GitHub away, or answering
what its API does not document, is a 502 `github_unavailable` in the product's words; no token
or secret is ever in a message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.exception import GitHubException, RequestFailed

from libs.config import Settings
from libs.web.errors import ApiError

PAGE = 100
# The most installations read for one user: GitHub lists them 100 a page.
MAX_PAGES = 50


class GitHubUser(msgspec.Struct, frozen=True):
    id: int
    login: str


class Account(msgspec.Struct, frozen=True):
    login: str
    type: str = "User"


class InstallationFacts(msgspec.Struct, frozen=True):
    id: int
    app_id: int
    account: Account
    repository_selection: str


class _Installations(msgspec.Struct, frozen=True):
    total_count: int
    installations: list[InstallationFacts]


class _TokenAnswer(msgspec.Struct, frozen=True):
    access_token: str | None = None
    error: str | None = None
    error_description: str | None = None


class NotFound(Exception):
    """GitHub answered 404."""


@contextlib.contextmanager
def github_errors(doing: str, signed_in: bool = False) -> Iterator[None]:
    """GitHub's failures as the product's errors: a 404 as `NotFound` (the caller knows what it
    means), a signed-in user's token refused as a 401 (the sign-in is over), anything else as a
    502: the product's own credentials refused are a fault of this server, not of the caller."""
    try:
        yield
    except RequestFailed as exc:
        status = exc.response.status_code
        if status == 404:
            raise NotFound from None
        if status == 401 and signed_in:
            raise ApiError(401, "unauthorized", f"GitHub refused your sign-in to {doing}: sign in again") from None
        raise ApiError(502, "github_unavailable", f"GitHub answered {status} to {doing}") from None
    except (GitHubException, httpx.HTTPError) as exc:
        raise ApiError(
            502, "github_unavailable", f"GitHub could not be reached to {doing}: {type(exc).__name__}"
        ) from None
    except msgspec.ValidationError as exc:
        raise ApiError(502, "github_unavailable", f"GitHub answered {doing} in an unexpected shape: {exc}") from None


def _client(settings: Settings, auth: Any) -> GitHub[Any]:
    return GitHub(
        auth, base_url=settings.github_api_url, timeout=settings.github_timeout_s, http_cache=False, auto_retry=False
    )


def callback_url(settings: Settings) -> str:
    return f"{(settings.public_url or '').rstrip('/')}/api/auth/github/callback"


async def exchange_code(settings: Settings, code: str) -> str:
    """The user's token for a sign-in's code; a code GitHub refuses (used, expired, forged) is a 400."""
    body = {
        "client_id": settings.github_client_id or "",
        "client_secret": settings.github_client_secret or "",
        "code": code,
        "redirect_uri": callback_url(settings),
    }
    url = f"{settings.github_web_url.rstrip('/')}/login/oauth/access_token"
    doing = "exchange the sign-in's code"
    with github_errors(doing):
        async with httpx.AsyncClient(timeout=settings.github_timeout_s) as client:
            response = await client.post(url, data=body, headers={"Accept": "application/json"})
        if response.status_code != 200:
            raise ApiError(502, "github_unavailable", f"GitHub answered {response.status_code} to {doing}")
        try:
            answer = msgspec.json.decode(response.content, type=_TokenAnswer)
        except msgspec.DecodeError:
            raise ApiError(502, "github_unavailable", f"GitHub answered {doing} with no JSON") from None
    if answer.error:
        # GitHub's own code for it (bad_verification_code, ...): words, never a secret.
        raise ApiError(400, "sign_in_refused", f"GitHub refused the sign-in's code: {answer.error}")
    if not answer.access_token:
        raise ApiError(502, "github_unavailable", f"GitHub answered {doing} without a token")
    return answer.access_token


async def signed_in_user(settings: Settings, token: str) -> GitHubUser:
    with github_errors("read the signed-in user"):
        async with _client(settings, TokenAuthStrategy(token)) as github:
            response = await github.rest.users.async_get_authenticated()
        user = msgspec.json.decode(response.content, type=GitHubUser)
    return user


async def installation(settings: Settings, installation_id: int) -> InstallationFacts | None:
    """The installation as the App sees it (its JWT), or None when GitHub knows none of that id."""
    assert settings.github_app_id and settings.github_app_private_key
    doing = f"read installation {installation_id} as the App"
    try:
        with github_errors(doing):
            # GitHub takes the App's id as an integer `iss` (the settings check that it is one).
            auth = AppAuthStrategy(int(settings.github_app_id), settings.github_app_private_key)
            async with _client(settings, auth) as github:
                response = await github.rest.apps.async_get_installation(installation_id)
            found = msgspec.json.decode(response.content, type=InstallationFacts)
    except NotFound:
        return None
    return found


async def users_installations(settings: Settings, token: str) -> set[int]:
    """The ids of the installations the user's token may use (`GET /user/installations`)."""
    found: set[int] = set()
    doing = "list the signed-in user's installations"
    with github_errors(doing, signed_in=True):
        async with _client(settings, TokenAuthStrategy(token)) as github:
            for page in range(1, MAX_PAGES + 1):
                response = await github.rest.apps.async_list_installations_for_authenticated_user(
                    per_page=PAGE, page=page
                )
                listed = msgspec.json.decode(response.content, type=_Installations)
                found.update(i.id for i in listed.installations)
                if len(listed.installations) < PAGE:
                    break
    return found
