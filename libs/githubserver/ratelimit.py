"""`GET /rate_limit` (any token; it costs nothing, as on GitHub) and the repositories of one of
the user's installations (`GET /user/installations/{id}/repositories`, a user's token)."""

from __future__ import annotations

import math
import time
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath

from libs.githubserver import app_render
from libs.githubserver.common import GitHubError
from libs.githubserver.conditional import RateCounter, token_digest
from libs.githubserver.credentials import identity_of, require_token, require_user_token
from libs.githubserver.http import Paging, docs, json, renderer
from libs.githubserver.state import RATE_LIMIT, Hosting

# GitHub's allowances for the other resources; the local server counts only the core one.
SEARCH_LIMIT, GRAPHQL_LIMIT = 30, 5000


class Rate(msgspec.Struct, frozen=True):
    limit: int
    used: int
    remaining: int
    reset: int


class RateLimitBody(msgspec.Struct, frozen=True):
    resources: dict[str, Rate]
    rate: Rate


def counter_of(request: Request[Any, Any, Any]) -> RateCounter:
    counter: RateCounter = request.app.state.rate
    return counter


@get(
    "/rate_limit",
    guards=[require_token],
    opt=docs("rate-limit/rate-limit#get-rate-limit-status-for-the-authenticated-user"),
)
async def rate_limit(request: Request[Any, Any, Any]) -> Response[Any]:
    digest = token_digest(request.headers.get("authorization", ""))
    assert digest is not None  # the guard let a token through
    allowance = counter_of(request).of(digest)
    reset = math.ceil(allowance.reset)
    core = Rate(limit=RATE_LIMIT, used=allowance.used, remaining=max(RATE_LIMIT - allowance.used, 0), reset=reset)
    fresh = math.ceil(time.time() + 60)
    resources = {
        "core": core,
        "search": Rate(limit=SEARCH_LIMIT, used=0, remaining=SEARCH_LIMIT, reset=fresh),
        "graphql": Rate(limit=GRAPHQL_LIMIT, used=0, remaining=GRAPHQL_LIMIT, reset=reset),
    }
    return json(RateLimitBody(resources=resources, rate=core))


@get(
    "/user/installations/{installation_id:int}/repositories",
    guards=[require_user_token],
    opt=docs("apps/installations#list-repositories-accessible-to-the-user-access-token"),
)
async def user_installation_repositories(
    request: Request[Any, Any, Any],
    hosting: NamedDependency[Hosting],
    installation_id: FromPath[int],
    paging: NamedDependency[Paging],
) -> Response[Any]:
    accounts = hosting.accounts
    mine = {i.id: i for i in accounts.installations_of(identity_of(request).login)}
    installation = mine.get(installation_id)
    if installation is None:
        raise GitHubError(404, "Not Found")
    repositories = hosting.repositories.values()
    return json(app_render.installation_repositories(renderer(request), installation, repositories, paging))


ROUTES = [rate_limit, user_installation_repositories]
