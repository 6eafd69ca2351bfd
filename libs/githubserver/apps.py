"""The GitHub App's routes: as the App (its JWT) `GET /app`, `GET /app/installations`,
`GET /app/installations/{id}`, `POST /app/installations/{id}/access_tokens`; as an installation
(its token) `GET /installation/repositories`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from libs.githubserver import app_render
from libs.githubserver.credentials import identity_of, require_app_jwt, require_installation_token
from libs.githubserver.http import Paging, docs, json, renderer
from libs.githubserver.state import Hosting


@get("/app", guards=[require_app_jwt], opt=docs("apps/apps#get-the-authenticated-app"))
async def get_app(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    accounts = hosting.accounts
    return json(app_render.integration(renderer(request), accounts.app, len(accounts.installations)))


@get("/app/installations", guards=[require_app_jwt], opt=docs("apps/apps#list-installations-for-the-authenticated-app"))
async def list_installations(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    paging: NamedDependency[Paging],
) -> Response[Any]:
    accounts = hosting.accounts
    _, listed = app_render.installations_page(renderer(request), accounts.app, accounts.installations.values(), paging)
    return json(listed)


@get(
    "/app/installations/{installation_id:int}",
    guards=[require_app_jwt],
    opt=docs("apps/apps#get-an-installation-for-the-authenticated-app"),
)
async def get_installation(
    request: Request[Any, Any, Any], hosting: NamedDependency[Hosting], installation_id: FromPath[int]
) -> Response[Any]:
    accounts = hosting.accounts
    return json(app_render.installation(renderer(request), accounts.app, accounts.installation(installation_id)))


@post(
    "/app/installations/{installation_id:int}/access_tokens",
    guards=[require_app_jwt],
    opt=docs("apps/apps#create-an-installation-access-token-for-an-app"),
)
async def create_access_token(hosting: NamedDependency[Hosting], installation_id: FromPath[int]) -> Response[Any]:
    accounts = hosting.accounts
    installation = accounts.installation(installation_id)
    token, expires_at = accounts.issue_installation_token(installation)
    return json(app_render.installation_token(token, expires_at, installation), 201)


@get(
    "/installation/repositories",
    guards=[require_installation_token],
    opt=docs("apps/installations#list-repositories-accessible-to-the-app-installation"),
)
async def installation_repositories(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    paging: NamedDependency[Paging],
) -> Response[Any]:
    installation = identity_of(request).installation
    assert installation is not None  # the guard lets only an installation's token through
    repositories = hosting.repositories.values()
    return json(app_render.installation_repositories(renderer(request), installation, repositories, paging))


ROUTES = [get_app, list_installations, get_installation, create_access_token, installation_repositories]
