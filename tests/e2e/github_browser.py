"""What a person does with a browser to sign in with GitHub, against the stack's local GitHub
server: become a GitHub user there, sign in to it, and follow the redirects from the gateway to
GitHub and back, keeping cookies as a browser does."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from libs.devstack.stack import Stack


def unique(prefix: str) -> str:
    """A GitHub login of the test's own (the local GitHub server lives as long as the stack)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def github_user(stack: Stack, login: str, orgs: tuple[str, ...] = ()) -> None:
    stack.local_github("/_users", {"login": login, "name": login.title(), "orgs": list(orgs)})


def github_org(stack: Stack, login: str) -> None:
    stack.local_github("/_users", {"login": login, "type": "Organization"})


def install_app(stack: Stack, account: str) -> int:
    """The App installed on the account (all its repositories): the installation's id."""
    installed = stack.local_github("/_installations", {"account": account})
    assert installed is not None
    return int(installed["id"])  # type: ignore[call-overload]


@contextmanager
def browser() -> Iterator[httpx.Client]:
    """A client that keeps cookies and, like the tests that read each hop, follows no redirect itself."""
    with httpx.Client(timeout=30, follow_redirects=False) as client:
        yield client


def follow(client: httpx.Client, response: httpx.Response, until: str) -> list[httpx.Response]:
    """Each hop from `response` on, following redirects until one leads to `until` (not followed)."""
    hops = [response]
    while response.is_redirect and response.headers["location"] != until:
        assert len(hops) < 10, [hop.headers.get("location") for hop in hops]
        response = client.get(response.headers["location"])
        hops.append(response)
    return hops


def sign_in(stack: Stack, client: httpx.Client, login: str) -> list[httpx.Response]:
    """Signs `login` in to the local GitHub in this browser, then in to the product: every hop,
    the last being the callback's answer."""
    signed_in_to_github = client.post(f"{stack.github_url}/_session", json={"login": login})
    assert signed_in_to_github.status_code == 204, signed_in_to_github.text
    return follow(client, client.get(f"{stack.gateway_url}/api/auth/github"), f"{stack.public_url}/")


def installed(client: httpx.Client, stack: Stack, installation_id: object, **headers: str) -> httpx.Response:
    params: dict[str, Any] = {"installation_id": installation_id, "setup_action": "install"}
    return client.get(f"{stack.gateway_url}/api/auth/github/installed", params=params, headers=headers)
