"""The App's OAuth web flow and the signed-in user's routes.

`GET /login/oauth/authorize` stands in for a person clicking "Authorize": the person is the one
signed in to this GitHub in the browser (the `user_session` cookie that `POST /_session`, or the
stand-in sign-in page `GET /login?login=<user>`, sets) or, if none is, the user GitHub's `login`
parameter names; it redirects straight back to the `redirect_uri` with a `code` and the `state`
(with nobody signed in, to `/login?return_to=...` first, as GitHub does). `POST /login/oauth/access_token` exchanges the
client's id and secret and the code (once) for the user's token: JSON when asked with
`Accept: application/json`, else form-encoded, and a refusal is GitHub's 200 with an `error`.

With the user's token: `GET /user`, `GET /user/orgs`, `GET /user/installations`.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromQuery, QueryParameter
from litestar.response import Redirect

from libs.githubserver import app_bodies, app_render
from libs.githubserver.accounts import Accounts, OAuthRefusal
from libs.githubserver.common import GitHubError
from libs.githubserver.credentials import identity_of, require_person, require_user_token
from libs.githubserver.http import Paging, docs, json, renderer
from libs.githubserver.state import Hosting

USER_SESSION = "user_session"
OAUTH_DOCS = "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app"
MISMATCH = "The redirect_uri MUST match the registered callback URL for this application."


def with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def allowed(redirect_uri: str, callback_url: str) -> bool:
    """GitHub's rule: the same scheme, host and port, and a path at or under the callback's."""
    asked, registered = urlsplit(redirect_uri), urlsplit(callback_url)
    path = registered.path.rstrip("/")
    return (asked.scheme, asked.netloc) == (registered.scheme, registered.netloc) and (
        asked.path == registered.path or asked.path.startswith(f"{path}/") or asked.path == path
    )


def person(request: Request[Any, Any, Any], accounts: Accounts, login: str | None) -> str | None:
    signed_in = accounts.browser_sessions.get(request.cookies.get(USER_SESSION, ""))
    if signed_in is not None:
        return signed_in
    named = accounts.account(login) if login else None
    return named.login if named is not None and named.type == "User" else None


@get("/login/oauth/authorize", media_type=MediaType.TEXT, status_code=200)
async def authorize(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    client_id: FromQuery[str | None] = None,
    redirect_uri: FromQuery[str | None] = None,
    # `state` is a name Litestar reserves for the app state.
    given_state: Annotated[str | None, QueryParameter(name="state")] = None,
    login: FromQuery[str | None] = None,
) -> Response[Any]:
    accounts = hosting.accounts
    app = accounts.app
    if client_id != app.client_id:
        return Response("Not Found", status_code=404, media_type=MediaType.TEXT)
    back = {"state": given_state} if given_state is not None else {}
    if redirect_uri and app.callback_url and not allowed(redirect_uri, app.callback_url):
        refusal = {"error": "redirect_uri_mismatch", "error_description": MISMATCH, "error_uri": OAUTH_DOCS}
        return Redirect(with_query(app.callback_url, refusal | back), status_code=302)
    target = redirect_uri or app.callback_url
    if not target:
        return Response("redirect_uri is required: the App has no callback URL", status_code=400)
    user = person(request, accounts, login)
    if user is None:
        # As GitHub does: sign in first, then come back here.
        return Redirect(with_query("/login", {"return_to": str(request.url)}), status_code=302)
    code = accounts.grant(user, app.client_id, target)
    return Redirect(with_query(target, {"code": code} | back), status_code=302)


@get("/login", media_type=MediaType.TEXT, status_code=200)
async def login_page(
    hosting: NamedDependency[Hosting],
    login: FromQuery[str | None] = None,
    return_to: FromQuery[str | None] = None,
) -> Response[Any]:
    """The stand-in for GitHub's sign-in page: `?login=<user>` signs that user in to this GitHub
    in the browser (a user made with `POST /_users`), then goes back to `return_to`."""
    if not login:
        message = "Local GitHub server: sign in as a user made with POST /_users by adding ?login=<user>\n"
        return Response(message, status_code=200, media_type=MediaType.TEXT)
    cookie = hosting.accounts.sign_in_browser(login)
    # Only a path of this server: no redirect elsewhere from a sign-in page.
    target = return_to if return_to and return_to.startswith("/") and not return_to.startswith("//") else "/"
    return Redirect(target, status_code=302, cookies=[Cookie(key=USER_SESSION, value=cookie, httponly=True)])


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The request's parameters wherever GitHub takes them: the query, a form, or JSON."""
    fields = dict(request.query_params)
    body = await request.body()
    if not body:
        return fields
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            decoded = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise GitHubError(400, "Problems parsing JSON") from None
        if not isinstance(decoded, dict):
            raise GitHubError(400, "Problems parsing JSON")
        return fields | {k: str(v) for k, v in decoded.items() if v is not None}
    return fields | dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))


@post("/login/oauth/access_token", status_code=200)
async def access_token(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    fields = await _fields(request)
    try:
        token = hosting.accounts.exchange(
            fields.get("client_id", ""),
            fields.get("client_secret", ""),
            fields.get("code", ""),
            fields.get("redirect_uri"),
        )
        answer = {"access_token": token, "token_type": "bearer", "scope": ""}
    except OAuthRefusal as refused:
        answer = {"error": refused.error, "error_description": refused.description, "error_uri": refused.uri}
    if "application/json" in request.headers.get("accept", ""):
        return json(answer)
    return Response(urlencode(answer), media_type="application/x-www-form-urlencoded; charset=utf-8")


@get("/user", guards=[require_person], opt=docs("users/users#get-the-authenticated-user"))
async def get_user(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    identity, render = identity_of(request), renderer(request)
    account = hosting.accounts.account(identity.login)
    if identity.kind == "token" or account is None:
        return json(app_render.the_configured_tokens_user(render))
    owned = sum(r.owner.lower() == account.login.lower() for r in hosting.repositories.values())
    return json(app_render.private_user(render, account, owned))


@get("/user/orgs", guards=[require_person], opt=docs("orgs/orgs#list-organizations-for-the-authenticated-user"))
async def user_orgs(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    paging: NamedDependency[Paging],
) -> Response[Any]:
    render = renderer(request)
    orgs = hosting.accounts.organizations_of(identity_of(request).login)
    return json([app_render.organization(render, org) for org in paging.of(orgs)])


@get(
    "/user/installations",
    guards=[require_user_token],
    opt=docs("apps/installations#list-app-installations-accessible-to-the-user-access-token"),
)
async def user_installations(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    paging: NamedDependency[Paging],
) -> Response[Any]:
    accounts = hosting.accounts
    found = accounts.installations_of(identity_of(request).login)
    total, listed = app_render.installations_page(renderer(request), accounts.app, found, paging)
    return json(app_bodies.UserInstallations(total_count=total, installations=listed))


ROUTES = [authorize, login_page, access_token, get_user, user_orgs, user_installations]
