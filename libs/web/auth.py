"""API keys at the HTTP edge: every route needs `Authorization: Bearer <key>` unless it is
marked public (`opt={"public": True}`: health, readiness, metrics, the OpenAPI document), and
acts inside the key's workspace. Admin routes take the admin token instead (`opt={"admin": True}`).
Spec 003's `/api/*` routes also take the sign-in cookie (`libs.web.session`) in place of a key:
the caller is then the signed-in GitHub user, in the workspace its sign-in is linked to.

401 without a key or with one that is not valid, 403 for a revoked key. A WebSocket may carry
the key as `?access_token=` instead, since browsers cannot set headers on one.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from libs.domain.workspace import key_hash, split_key
from libs.readmodels import workspace_reads
from libs.web.errors import ApiError
from libs.web.session import accepts_session, refuse_cross_site, signed_in
from libs.web.state import EdgeState, state_of

CALLER = "caller"


class Caller(msgspec.Struct, frozen=True):
    workspace_id: str
    key_id: str | None  # None when signed in with GitHub (the cookie)
    github_login: str | None = None  # the signed-in GitHub user, when signed in


def token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    scheme, _, token = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    if connection.scope["type"] == "websocket":
        return connection.query_params.get("access_token") or None
    return None


async def require_key(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """The app-wide guard. A WebSocket authenticates itself once accepted (`authenticate`): it
    can then say why it closes, where a refused upgrade only says 403."""
    if "\x00" in connection.scope["path"]:
        # No id of ours holds U+0000, and PostgreSQL could not even compare one that did.
        raise ApiError(404, "Not found", "no such resource")
    if handler.opt.get("public") or connection.scope["type"] == "websocket" or _is_schema(connection):
        return
    if handler.opt.get("admin"):
        return require_admin(connection)
    await authenticate(connection)


def _is_schema(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    path: str = connection.scope["path"]
    return path == "/schema" or path.startswith("/schema/")


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    token = token_of(connection)
    if token is None:
        return by_session(connection)
    parts = split_key(token)
    record = await workspace_reads.api_key(state_of(connection, EdgeState).pool, parts[0]) if parts else None
    if parts is None or record is None or not hmac.compare_digest(record["key_hash"], key_hash(parts[1])):
        raise ApiError(401, "unauthorized", "the API key is not valid")
    if record["revoked_at"] is not None:
        raise ApiError(403, "forbidden", "this API key was revoked")
    found = Caller(record["workspace_id"], parts[0])
    connection.scope.setdefault("state", {})[CALLER] = found
    return found


def by_session(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    """The caller a request without a key is: the signed-in user of its cookie, on the routes
    that take one."""
    path: str = connection.scope["path"]
    user = signed_in(connection) if accepts_session(path) else None
    if user is None:
        also = " or a GitHub sign-in (GET /api/auth/github)" if accepts_session(path) else ""
        raise ApiError(401, "unauthorized", f"this endpoint needs an API key: Authorization: Bearer <key>{also}")
    refuse_cross_site(connection)
    found = Caller(user.workspace_id, None, user.login)
    connection.scope.setdefault("state", {})[CALLER] = found
    return found


def require_admin(connection: ASGIConnection[Any, Any, Any, Any]) -> None:
    expected = state_of(connection, EdgeState).settings.admin_token
    token = token_of(connection)
    if not expected:
        raise ApiError(401, "unauthorized", "the admin API is off: start the gateway with ADMIN_TOKEN set")
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "the admin API needs Authorization: Bearer <admin token>")


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    return connection.scope["state"][CALLER]  # type: ignore[no-any-return]


def workspace_of(connection: ASGIConnection[Any, Any, Any, Any], workspace_id: str) -> str:
    """The path's workspace, when it is the caller's: another workspace is as good as unknown."""
    if caller(connection).workspace_id != workspace_id:
        raise ApiError(404, "Not found", f"workspace {workspace_id} not found")
    return workspace_id


def key_checker(connection: ASGIConnection[Any, Any, Any, Any]) -> Callable[[], Awaitable[bool]]:
    """For a long-lived response: is the caller's key still valid (not revoked since)?"""
    pool, key_id = state_of(connection, EdgeState).pool, caller(connection).key_id

    async def still_valid() -> bool:
        if key_id is None:
            return True  # a sign-in lasts as long as its cookie
        record = await workspace_reads.api_key(pool, key_id)
        return record is not None and record["revoked_at"] is None

    return still_valid
