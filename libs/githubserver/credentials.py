"""Who calls: the guards of the local GitHub server's API routes, each accepting the credentials
GitHub accepts on them, and the identity a route then acts as.

- repository routes: the configured token (the account `agent-orchestrator`), a user's OAuth
  token, or an installation's token, which reaches only the installation's repositories;
- `/user...`: a user's token (`/user` also the configured token's account);
- `/installation/...`: an installation's token;
- `/app...`: the App's JWT (`libs.githubserver.app_jwt`).

`Authorization: token <t>` and `Bearer <t>` are both taken, as on GitHub.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers import BaseRouteHandler

from libs.githubserver import app_jwt
from libs.githubserver.accounts import Installation
from libs.githubserver.common import LOGIN, GitHubError
from libs.githubserver.state import Hosting, rate_limited

IDENTITY = "github_identity"
NOT_FOR_INTEGRATIONS = "Resource not accessible by integration"


@dataclass(frozen=True)
class Identity:
    kind: str  # "token" (the configured one), "user" or "installation"
    login: str  # who acts: the configured token's account, the user, or the App's bot
    installation: Installation | None = None


def hosting_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Hosting:
    hosting: Hosting = connection.app.state.hosting
    return hosting


def identity_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    found: Identity = connection.scope["state"][IDENTITY]
    return found


def presented(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    header = connection.headers.get("authorization", "")
    if not header:
        raise GitHubError(401, "Requires authentication")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("token", "bearer") or not token.strip():
        raise GitHubError(401, "Bad credentials")
    return token.strip()


def identify(hosting: Hosting, token: str) -> Identity | None:
    if hmac.compare_digest(token.encode(), hosting.token.encode()):
        return Identity("token", LOGIN)
    accounts = hosting.accounts
    user = accounts.user_of_token(token)
    if user is not None:
        return Identity("user", user.login)
    installation = accounts.installation_of_token(token)
    if installation is not None:
        return Identity("installation", f"{accounts.app.slug}[bot]", installation)
    return None


def _settle(connection: ASGIConnection[Any, Any, Any, Any], identity: Identity) -> None:
    hosting = hosting_of(connection)
    if time.time() < hosting.rate_limited_until:
        raise rate_limited(hosting.rate_limited_until)
    connection.scope.setdefault("state", {})[IDENTITY] = identity


def require_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    identity = identify(hosting_of(connection), presented(connection))
    if identity is None:
        raise GitHubError(401, "Bad credentials")
    _settle(connection, identity)


def require_person(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """`/user` and `/user/orgs`: a token that belongs to an account, not an installation's."""
    identity = identify(hosting_of(connection), presented(connection))
    if identity is None:
        raise GitHubError(401, "Bad credentials")
    if identity.kind == "installation":
        raise GitHubError(403, NOT_FOR_INTEGRATIONS)
    _settle(connection, identity)


def require_user_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """`/user/installations`: only a user's token from the App's OAuth flow."""
    identity = identify(hosting_of(connection), presented(connection))
    if identity is None:
        raise GitHubError(401, "Bad credentials")
    if identity.kind != "user":
        raise GitHubError(
            403, "You must authenticate with an access token authorized to a GitHub App in order to list installations"
        )
    _settle(connection, identity)


def require_installation_token(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    identity = identify(hosting_of(connection), presented(connection))
    if identity is None:
        raise GitHubError(401, "Bad credentials")
    if identity.kind != "installation":
        raise GitHubError(
            403,
            "You must authenticate with an installation access token in order to list repositories for an "
            "installation.",
        )
    _settle(connection, identity)


def require_app_jwt(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    hosting = hosting_of(connection)
    token = presented(connection)
    if token.count(".") != 2:
        raise GitHubError(401, app_jwt.UNDECODABLE)
    app_jwt.verify(token, hosting.accounts.app)
    if time.time() < hosting.rate_limited_until:
        raise rate_limited(hosting.rate_limited_until)
