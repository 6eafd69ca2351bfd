"""Spec 003's GitHub data through HTTP on the real stack, signed in a browser's way against the
local GitHub server: the profile, orgs, installations (linked to the workspace or not), their
repositories, the summary, an issue, the rate limit; a repeated read answered from a 304 costs
no rate limit; another user's data never shows; a workspace key reads with the workspace's
stored GitHub token, and without one is told how to store it."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.github_browser import browser, github_org, github_user, install_app, installed, sign_in, unique
from tests.e2e.helpers import bearer, new_workspace

pytestmark = pytest.mark.e2e

STATUSES = {"pending", "assigned", "running", "review", "approved", "completed", "failed", "cancelled", "paused"}


def repository(stack: Stack, owner: str, name: str) -> None:
    stack.local_github("/_repos", {"owner": owner, "repo": name, "files": {"README.md": "# hi\n"}})


def a_user_with_an_org(stack: Stack) -> tuple[str, str, int, int]:
    """A GitHub user, an org of theirs, the App installed on both (each with a repository): the
    user's login, the org's, and the two installations (user's, org's)."""
    login, org = unique("dana"), unique("team")
    github_org(stack, org)
    github_user(stack, login, orgs=(org,))
    repository(stack, login, "notes")
    repository(stack, org, "service")
    return login, org, install_app(stack, login), install_app(stack, org)


def api(client: httpx.Client, stack: Stack, path: str, **kwargs: object) -> httpx.Response:
    return client.get(f"{stack.gateway_url}{path}", **kwargs)  # type: ignore[arg-type]


def ok(response: httpx.Response) -> dict:  # type: ignore[type-arg]
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_signed_in_user_reads_their_github_data(stack: Stack) -> None:
    login, org, own, orgs_installation = a_user_with_an_org(stack)
    with browser() as client:
        sign_in(stack, client, login)
        assert installed(client, stack, orgs_installation).status_code == 200

        profile = ok(api(client, stack, "/api/github/profile"))
        orgs = ok(api(client, stack, "/api/github/orgs"))
        installations = ok(api(client, stack, "/api/github/installations"))
        repositories = ok(api(client, stack, "/api/github/repositories"))
        summary = ok(api(client, stack, "/api/github/summary"))

    assert profile["login"] == login and profile["name"] == login.title()
    assert profile["htmlUrl"].endswith(f"/{login}") and "avatarUrl" in profile
    assert [o["login"] for o in orgs["orgs"]] == [org]
    # Both installations the user can use; only the org's is linked to the user's workspace.
    by_id = {i["installationId"]: i for i in installations["installations"]}
    assert set(by_id) == {own, orgs_installation}
    assert (by_id[orgs_installation]["linked"], by_id[orgs_installation]["account"]) == (True, org)
    assert (by_id[own]["linked"], by_id[own]["accountType"]) == (False, "User")
    names = {(r["fullName"], r["installationId"]) for r in repositories["repositories"]}
    assert names == {(f"{login}/notes", own), (f"{org}/service", orgs_installation)}
    assert repositories["truncated"] is False
    assert summary["profile"] == profile
    assert summary["counts"] == {
        "orgs": 1,
        "installations": 2,
        "linkedInstallations": 1,
        "repositories": 2,
        "repositoriesTruncated": False,
    }
    # A new workspace: every status listed, none with tasks yet.
    assert summary["tasks"] == dict.fromkeys(STATUSES, 0)


def test_an_issue_is_read_and_a_missing_one_is_a_404(stack: Stack) -> None:
    login, org, _, _ = a_user_with_an_org(stack)
    opened = stack.local_github(
        "/_issues", {"owner": org, "repo": "service", "title": "Validate input", "body": "Please.", "user": login}
    )
    assert opened is not None
    number = opened["number"]
    with browser() as client:
        sign_in(stack, client, login)
        issue = ok(api(client, stack, f"/api/github/issues/{org}/service/{number}"))
        missing = api(client, stack, f"/api/github/issues/{org}/service/987654")
        bad = api(client, stack, f"/api/github/issues/-{org}/service/1")
        zero = api(client, stack, f"/api/github/issues/{org}/service/0")

    assert issue == {
        "owner": org,
        "repo": "service",
        "number": number,
        "title": "Validate input",
        "body": "Please.",
        "state": "open",
        "labels": [],
        "author": login,
        "comments": 0,
        "htmlUrl": issue["htmlUrl"],
    }
    assert issue["htmlUrl"].endswith(f"/{org}/service/issues/{number}")
    assert missing.status_code == 404 and missing.json()["error"] == "Not found"
    assert f"{org}/service#987654" in missing.json()["message"]
    for refused in (bad, zero):
        assert refused.status_code == 400 and set(refused.json()) >= {"error", "message"}


def core_remaining(client: httpx.Client, stack: Stack) -> int:
    limit = ok(api(client, stack, "/api/rate-limit"))
    assert set(limit) == {"core", "search", "graphql"}
    datetime.fromisoformat(limit["core"]["reset"])  # an ISO time
    return int(limit["core"]["remaining"])


def test_a_repeated_read_is_answered_from_a_304_that_costs_no_rate_limit(stack: Stack) -> None:
    login, _, _, _ = a_user_with_an_org(stack)
    with browser() as client:
        sign_in(stack, client, login)
        first = ok(api(client, stack, "/api/github/profile"))
        before = core_remaining(client, stack)
        # Another route's first read costs one: the counter the test reads does move.
        ok(api(client, stack, "/api/github/orgs"))
        after_orgs = core_remaining(client, stack)
        again = [ok(api(client, stack, "/api/github/profile")) for _ in range(3)]
        after_profile = core_remaining(client, stack)

    assert after_orgs == before - 1
    assert again == [first] * 3
    assert after_profile == after_orgs


def test_another_users_data_never_shows(stack: Stack) -> None:
    alice, _, alices_own, alices_org = a_user_with_an_org(stack)
    bob = unique("bob")
    github_user(stack, bob)
    with browser() as as_alice, browser() as as_bob:
        sign_in(stack, as_alice, alice)
        sign_in(stack, as_bob, bob)
        # The same GitHub URL for both, alice's answer kept first: bob still gets his own.
        alices = ok(api(as_alice, stack, "/api/github/profile"))
        bobs = ok(api(as_bob, stack, "/api/github/profile"))
        alices_installations = ok(api(as_alice, stack, "/api/github/installations"))
        bobs_installations = ok(api(as_bob, stack, "/api/github/installations"))
        bobs_repositories = ok(api(as_bob, stack, "/api/github/repositories"))
        bobs_orgs = ok(api(as_bob, stack, "/api/github/orgs"))

    assert (alices["login"], bobs["login"]) == (alice, bob)
    assert {i["installationId"] for i in alices_installations["installations"]} == {alices_own, alices_org}
    assert bobs_installations == {"installations": []}
    assert bobs_repositories == {"repositories": [], "truncated": False}
    assert bobs_orgs == {"orgs": []}


def test_a_workspace_key_reads_with_its_stored_token_and_without_one_is_told_how(stack: Stack) -> None:
    workspace = new_workspace(stack, "ghdata")
    key = bearer(workspace["apiKey"])
    url = f"{stack.gateway_url}/api/github/profile"

    without = httpx.get(url, headers=key, timeout=30)
    nobody = httpx.get(url, timeout=30)
    stored = httpx.put(
        f"{stack.gateway_url}/api/config/credentials", json={"githubToken": stack.github_token}, headers=key, timeout=30
    )
    profile = httpx.get(url, headers=key, timeout=30)
    # A personal token cannot list App installations on GitHub: its refusal is passed on.
    installations = httpx.get(f"{stack.gateway_url}/api/github/installations", headers=key, timeout=30)

    assert without.status_code == 409
    assert without.json()["error"] == "github_token_missing"
    assert "PUT /api/config/credentials" in without.json()["message"]
    assert nobody.status_code == 401 and nobody.json()["error"] == "unauthorized"
    assert stored.status_code == 200, stored.text
    assert profile.status_code == 200, profile.text
    assert profile.json()["login"] == "agent-orchestrator"
    assert installations.status_code == 403 and installations.json()["error"] == "github_forbidden"
    for answer in (without, stored, profile, installations):
        assert stack.github_token not in answer.text
