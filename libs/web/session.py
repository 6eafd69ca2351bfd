"""The sign-in cookie: Litestar's client-side session, encrypted and authenticated (AES-256-GCM)
with a key derived from `SESSION_SECRET`, HttpOnly, SameSite=Lax, and Secure unless the product's
public URL is plain http. It holds a sign-in under way (`PendingSignIn`: the OAuth `state`) or
the signed-in GitHub user (`SignedIn`: the workspace, and the user's token, which is kept nowhere
else).

Where it counts: on spec 003's `/api/*` routes only (`accepts_session`); spec 000, 001
(`/api/v1/...`), 002 (`/api/agent/...`) and 004 stay bearer-only, so the middleware does not even
read it there.

Cross-site requests: SameSite=Lax keeps the cookie off another site's POSTs, and on top of that a
request that changes something (any method but GET, HEAD, OPTIONS), authenticated by the cookie,
must carry the `X-Requested-With` header (any value): a form on another site cannot send a custom
header, and a script there cannot without a CORS preflight, which this server does not grant.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from litestar.connection import ASGIConnection
from litestar.exceptions import SerializationException
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

from libs.config import Settings
from libs.web.diagnostics import AGENT_PREFIX
from libs.web.errors import ApiError

COOKIE = "orchestrator_session"
# The cookie's life; each answer renews it, but a sign-in lasts no longer than this (`SignedIn`).
MAX_AGE_S = 7 * 24 * 3600
SIGN_IN_S = 600  # the time a person has to authorize on GitHub (GitHub's codes last as long)
CSRF_HEADER = "X-Requested-With"
# A shorter secret could be guessed: without one at least this long, nobody can sign in.
MIN_SESSION_SECRET = 32
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PENDING, USER = "signin", "user"


class PendingSignIn(msgspec.Struct, frozen=True):
    state: str
    expires_at: int  # epoch seconds


class SignedIn(msgspec.Struct, frozen=True):
    workspace_id: str
    github_user_id: int
    login: str
    token: str  # the user's GitHub token: in this encrypted cookie only
    signed_in_at: int  # epoch seconds


class _Backend(ClientSideSessionBackend):
    async def load_from_connection(self, connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
        # Litestar reads the cookie's expiry before it checks the cookie's authenticity: a forged
        # cookie with a malformed expiry would be a 500. Any cookie that does not decrypt is none.
        try:
            return await super().load_from_connection(connection)
        except (SerializationException, InvalidTag, binascii.Error, ValueError, KeyError, TypeError):
            return {}


class _Config(CookieBackendConfig):
    _backend_class = _Backend


def accepts_session(path: str) -> bool:
    return path.startswith("/api/") and not path.startswith(("/api/v1/", AGENT_PREFIX))


def session_middleware(settings: Settings) -> Any | None:
    """The session middleware, or None without a `SESSION_SECRET` of `MIN_SESSION_SECRET`
    characters (then nobody can sign in)."""
    if not settings.session_secret or len(settings.session_secret) < MIN_SESSION_SECRET:
        return None
    key = hashlib.sha256(b"agent-orchestrator session cookie\x00" + settings.session_secret.encode()).digest()
    return _Config(
        secret=key,
        key=COOKIE,
        max_age=MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=not (settings.public_url or "").startswith("http://"),
        # Only spec 003's `/api/*` routes read the cookie.
        exclude=[r"^/(?!api/).+", r"^/api/v1/", rf"^{AGENT_PREFIX}"],
    ).middleware


def _stored(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any]:
    session = connection.scope.get("session")
    return session if isinstance(session, dict) else {}


def signed_in(connection: ASGIConnection[Any, Any, Any, Any]) -> SignedIn | None:
    """The signed-in user of the request's cookie; None without one, or once it is too old."""
    try:
        found = msgspec.convert(_stored(connection).get(USER), SignedIn)
    except msgspec.ValidationError:
        return None
    return found if found.signed_in_at + MAX_AGE_S > time.time() else None


def pending(connection: ASGIConnection[Any, Any, Any, Any]) -> PendingSignIn | None:
    try:
        found = msgspec.convert(_stored(connection).get(PENDING), PendingSignIn)
    except msgspec.ValidationError:
        return None
    return found if found.expires_at > time.time() else None


def refuse_cross_site(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    """A change asked with the cookie alone must say it comes from a script of this site."""
    if connection.scope.get("method", "GET") not in SAFE_METHODS and not connection.headers.get(CSRF_HEADER):
        raise ApiError(
            403,
            "forbidden",
            f"a request signed in by cookie that changes something must carry the {CSRF_HEADER} header "
            "(any value), which a page of another site cannot send",
        )
