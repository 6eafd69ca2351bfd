"""The local server's own routes for tests and development (no token; GitHub has none of them):
accounts, installations of the App, issues, roles, a browser signed in, and webhook deliveries.

- `POST /_users` `{"login", "type"?, "name"?, "email"?, "orgs"?}`: a user (a member of the
  organizations named, made as needed) or an organization;
- `POST /_installations` `{"account", "repositories"?}`: the App installed on the account, on all
  its repositories or on those named (`owner/name`); answers the installation as GitHub shows it;
- `POST /_issues` `{"owner", "repo", "title", "body"?, "user"?}`: an issue;
- `POST /_collaborators` `{"owner", "repo", "user", "role"}`: a user's role on a repository
  (the owner of a user's repository is its admin; anyone else reads);
- `POST /_session` `{"login"}`: that user signed in to this GitHub in the caller's browser (the
  `user_session` cookie), whom `/login/oauth/authorize` then signs in;
- `GET /_app`: the App's id, slug and client id (never its key or secrets);
- `POST /_webhooks`: a signed delivery to a URL (`app_bodies.NewDelivery`), and the answer.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency

from libs.githubserver import app_bodies, app_render, webhooks
from libs.githubserver.common import GitHubError
from libs.githubserver.http import json, read, renderer
from libs.githubserver.oauth import USER_SESSION
from libs.githubserver.state import Hosting


@post("/_users")
async def create_account(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    body = await read(request, app_bodies.NewAccount)
    account = hosting.accounts.add_account(body.login, body.type, body.name, body.email, body.orgs)
    return json(app_render.account(renderer(request), account), 201)


@post("/_installations")
async def install(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    body = await read(request, app_bodies.NewInstallation)
    installation = hosting.accounts.install(body.account, body.repositories)
    return json(app_render.installation(renderer(request), hosting.accounts.app, installation), 201)


@post("/_issues")
async def open_issue(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    body = await read(request, app_bodies.NewIssue)
    repository = hosting.repository(body.owner, body.repo)
    issue = repository.open_issue(body.title, body.body, body.user, hosting.next_id())
    return json(app_render.issue(renderer(request), repository, issue), 201)


@post("/_collaborators", status_code=204)
async def set_role(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> None:
    body = await read(request, app_bodies.NewRole)
    hosting.repository(body.owner, body.repo).roles[body.user.lower()] = body.role


@post("/_session", status_code=204)
async def sign_in_browser(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[None]:
    body = await read(request, app_bodies.BrowserSignIn)
    cookie = hosting.accounts.sign_in_browser(body.login)
    return Response(None, status_code=204, cookies=[Cookie(key=USER_SESSION, value=cookie, httponly=True)])


@get("/_app")
async def app_info(hosting: NamedDependency[Hosting]) -> app_bodies.AppInfo:
    app = hosting.accounts.app
    return app_bodies.AppInfo(
        id=app.id,
        slug=app.slug,
        client_id=app.client_id,
        callback_url=app.callback_url,
        webhook_secret_set=app.webhook_secret is not None,
    )


@post("/_webhooks")
async def send_webhook(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    asked = await read(request, app_bodies.NewDelivery)
    if asked.payload is not None:
        body = msgspec.json.encode(asked.payload)
    elif asked.event == "issue_comment":
        body = webhooks.issue_comment(renderer(request), hosting, asked)
    else:
        raise GitHubError(422, f"a {asked.event} delivery needs its `payload`: only issue_comment is built here")
    return json(await webhooks.deliver(hosting, asked, body))


ROUTES = [create_account, install, open_issue, set_role, sign_in_browser, app_info, send_webhook]
