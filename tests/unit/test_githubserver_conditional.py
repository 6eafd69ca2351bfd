"""The local GitHub server answers conditional requests and counts the rate limit as GitHub does:
an ETag on each GET, a 304 with no body when `If-None-Match` names it, which costs nothing, every
other call counting one against its token, and `GET /rate_limit` saying where each token stands."""

from __future__ import annotations

import httpx
import pytest

from libs.githubserver.accounts import App
from libs.githubserver.app import create_app
from libs.githubserver.conditional import matches
from libs.githubserver.state import RATE_LIMIT, Hosting

TOKEN = "configured-token"


@pytest.fixture(scope="module")
def the_app() -> App:
    return App.generate(id=5)


@pytest.fixture
async def github(the_app: App) -> httpx.AsyncClient:
    hosting = Hosting(TOKEN, the_app)
    transport = httpx.ASGITransport(app=create_app(hosting))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://github.test")


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"token {token}"}


async def core(github: httpx.AsyncClient, token: str = TOKEN) -> dict[str, int]:
    answer = await github.get("/rate_limit", headers=auth(token))
    assert answer.status_code == 200, answer.text
    assert set(answer.json()["resources"]) >= {"core", "search", "graphql"}
    return answer.json()["resources"]["core"]  # type: ignore[no-any-return]


async def test_a_repeated_get_is_a_304_that_costs_nothing(github: httpx.AsyncClient) -> None:
    first = await github.get("/user", headers=auth())
    assert first.status_code == 200 and first.json()["login"]
    etag = first.headers["etag"]
    assert first.headers["x-ratelimit-remaining"] == str(RATE_LIMIT - 1)

    again = await github.get("/user", headers={**auth(), "If-None-Match": etag})

    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    assert again.headers["x-ratelimit-remaining"] == str(RATE_LIMIT - 1)
    assert (await core(github))["used"] == 1


async def test_a_stale_etag_gets_the_body_and_counts(github: httpx.AsyncClient) -> None:
    answer = await github.get("/user", headers={**auth(), "If-None-Match": 'W/"not-it"'})
    assert answer.status_code == 200 and answer.json()["login"]
    assert (await core(github))["used"] == 1


async def test_each_token_has_its_own_allowance(github: httpx.AsyncClient) -> None:
    await github.get("/user", headers=auth())
    await github.get("/user", headers=auth())
    assert (await core(github))["remaining"] == RATE_LIMIT - 2
    # A token GitHub refuses is counted apart, and never against the configured one.
    refused = await github.get("/user", headers=auth("someone-else"))
    assert refused.status_code == 401
    assert (await core(github))["used"] == 2


def test_etags_compare_weakly() -> None:
    assert matches('W/"abc"', 'W/"abc"') and matches('"abc"', 'W/"abc"') and matches('"x", W/"abc"', 'W/"abc"')
    assert not matches('W/"abd"', 'W/"abc"') and not matches("", 'W/"abc"')
