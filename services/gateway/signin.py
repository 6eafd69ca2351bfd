"""Spec 003's sign-in with GitHub: `GET /api/auth/github` sends the browser to GitHub with a
random `state` kept in the sign-in cookie; `GET /api/auth/github/callback` checks that state
(once), exchanges GitHub's code for the user's token, reads the user, links it to its workspace
(made at its first sign-in) and keeps the sign-in in the cookie, then sends the browser to the
product's page; `POST /api/auth/logout` ends it; `GET /api/auth/diagnostics` says what the
server lacks for all this, never a value."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from litestar import Request, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from contracts.github import AuthDiagnostics
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from libs.web.session import (
    PENDING,
    SIGN_IN_S,
    USER,
    PendingSignIn,
    SignedIn,
    pending,
    refuse_cross_site,
    signed_in,
)
from services.gateway import github
from services.gateway.github_links import sign_in
from services.gateway.signin_settings import SIGN_IN, diagnose, require
from services.gateway.state import gateway_state

PUBLIC = {"public": True}
NOT_CONFIGURED = "Sign-in is not configured on this server: the message names the settings it lacks."
Short = Annotated[str | None, QueryParameter(max_length=2000)]


def _require_sign_in(request: Request[Any, Any, Any]) -> None:
    require(gateway_state(request).settings, (*SIGN_IN, "GITHUB_WEB_URL"), "GitHub sign-in")


@get("/api/auth/github", status_code=302, opt={**PUBLIC, ERRORS: {503: NOT_CONFIGURED}})
async def start_sign_in(request: Request[Any, Any, Any]) -> Redirect:
    """Sends the browser to GitHub to sign in; GitHub sends it back to the callback."""
    _require_sign_in(request)
    settings = gateway_state(request).settings
    state = secrets.token_urlsafe(32)
    session = dict(request.session)
    session[PENDING] = msgspec.to_builtins(PendingSignIn(state=state, expires_at=int(time.time()) + SIGN_IN_S))
    request.set_session(session)
    query = urlencode(
        {"client_id": settings.github_client_id, "redirect_uri": github.callback_url(settings), "state": state}
    )
    return Redirect(f"{settings.github_web_url.rstrip('/')}/login/oauth/authorize?{query}", status_code=302)


@get(
    "/api/auth/github/callback",
    status_code=302,
    opt={
        **PUBLIC,
        ERRORS: {
            400: "The state is not this browser's sign-in's (or was used), GitHub refused the code, or the "
            "person declined: start again at GET /api/auth/github.",
            502: "GitHub could not be reached, or answered what its API does not document.",
            503: NOT_CONFIGURED,
        },
    },
)
async def finish_sign_in(
    request: Request[Any, Any, Any],
    code: Short = None,
    # `state` is a name Litestar reserves for the app state.
    given_state: Annotated[str | None, QueryParameter(name="state", max_length=2000)] = None,
    error: Short = None,
) -> Redirect:
    """Where GitHub sends the browser back: signs the user in, then sends it to the product."""
    _require_sign_in(request)
    state = gateway_state(request)
    expected = pending(request)
    # The state is good for one callback, whatever comes of it.
    request.set_session({k: v for k, v in request.session.items() if k != PENDING})
    if error:
        raise ApiError(400, "sign_in_refused", f"GitHub did not sign you in: {error}")
    if expected is None or not given_state or not hmac.compare_digest(given_state.encode(), expected.state.encode()):
        # Often a sign-in started on another host than PUBLIC_URL's, whose cookie this one never saw.
        start = f"{(state.settings.public_url or '').rstrip('/')}/api/auth/github"
        message = f"the sign-in's state is not this browser's, or was used: start again at {start}"
        raise ApiError(400, "invalid_state", message)
    if not code:
        raise ApiError(400, "invalid_request", "code: GitHub's code is missing")
    token = await github.exchange_code(state.settings, code)
    user = await github.signed_in_user(state.settings, token)
    account = await sign_in(state, user)
    signed = SignedIn(
        workspace_id=account.workspace_id,
        github_user_id=user.id,
        login=user.login,
        token=token,
        signed_in_at=int(time.time()),
    )
    request.set_session({USER: msgspec.to_builtins(signed)})
    return Redirect(f"{(state.settings.public_url or '').rstrip('/')}/", status_code=302)


@post(
    "/api/auth/logout",
    status_code=204,
    opt={**PUBLIC, ERRORS: {403: "Signed in by cookie, without the X-Requested-With header."}},
)
async def sign_out(request: Request[Any, Any, Any]) -> None:
    """Ends the sign-in: the cookie is cleared. Nothing to end is fine too."""
    if "session" not in request.scope:
        return  # no sign-in can exist on this server (no SESSION_SECRET)
    if signed_in(request) is not None or pending(request) is not None:
        refuse_cross_site(request)
    request.clear_session()


@get("/api/auth/diagnostics", sync_to_thread=False, opt=PUBLIC)
def auth_diagnostics(request: Request[Any, Any, Any]) -> AuthDiagnostics:
    """Each setting sign-in and installations need: configured, missing or invalid, and what it
    is for; never a value."""
    return diagnose(gateway_state(request).settings)


ROUTES = [start_sign_in, finish_sign_in, sign_out, auth_diagnostics]
