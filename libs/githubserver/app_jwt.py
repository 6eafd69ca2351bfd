"""The GitHub App's JWT as GitHub checks it: RS256, signed with the App's private key, issued by
its id (or client ID), issued no later than now, expiring in the future and at most ten minutes
ahead. Each refusal is a 401 with GitHub's words."""

from __future__ import annotations

import time

import jwt

from libs.githubserver.accounts import App
from libs.githubserver.common import GitHubError

# GitHub allows the clocks to drift a little; githubkit backdates `iat` by a minute for that.
LEEWAY_S = 60
MAX_LIFETIME_S = 600

UNDECODABLE = "A JSON web token could not be decoded"
BAD_IAT = "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued"
BAD_EXP = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion "
    "expires"
)
FAR_EXP = "'Expiration time' claim ('exp') is too far in the future"
UNKNOWN_ISSUER = "Integration not found"


def verify(token: str, app: App, at: float | None = None) -> None:
    """Raises `GitHubError(401, ...)` unless `token` is a valid JWT of `app` at time `at`."""
    now = time.time() if at is None else at
    try:
        claims = jwt.decode(
            token,
            app.public_key(),
            algorithms=["RS256"],
            # The claims are checked below, each refused in GitHub's words.
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_iss": False},
        )
    except jwt.InvalidTokenError:
        raise GitHubError(401, UNDECODABLE) from None
    if str(claims.get("iss")) not in (str(app.id), app.client_id):
        raise GitHubError(401, UNKNOWN_ISSUER)
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or issued > now + LEEWAY_S:
        raise GitHubError(401, BAD_IAT)
    if not isinstance(expires, int | float) or expires <= now:
        raise GitHubError(401, BAD_EXP)
    if expires - now > MAX_LIFETIME_S + LEEWAY_S:
        raise GitHubError(401, FAR_EXP)
