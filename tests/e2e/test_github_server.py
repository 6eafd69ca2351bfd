"""The stack's local GitHub server: started because no GITHUB_TOKEN is set, and the GitHub the
services are pointed at (the URL and the token they get are the ones it serves and accepts)."""

from __future__ import annotations

import pytest
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from libs.devstack.stack import Stack

pytestmark = pytest.mark.e2e


async def test_the_services_are_pointed_at_the_local_github_server(stack: Stack) -> None:
    env = stack.service_env("executor")
    github = GitHub(TokenAuthStrategy(env["GITHUB_TOKEN"]), base_url=env["GITHUB_API_URL"], http_cache=False)
    intruder = GitHub(TokenAuthStrategy("not-the-token"), base_url=stack.github_url, http_cache=False)

    repository = (await github.rest.repos.async_get("acme", "api")).parsed_data
    with pytest.raises(RequestFailed) as refused:
        await intruder.rest.repos.async_get("acme", "api")

    assert stack.uses_local_github
    assert env["GITHUB_API_URL"] == stack.github_url
    assert env["GITHUB_TOKEN"] == stack.github_token
    assert repository.html_url == f"{stack.github_url}/acme/api"
    assert refused.value.response.status_code == 401
