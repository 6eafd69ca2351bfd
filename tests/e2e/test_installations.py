"""The GitHub App installation hand-off through HTTP on the real stack: GitHub's "Setup URL"
(`GET /api/auth/github/installed?installation_id=...&setup_action=install`) links the
installation to the caller's workspace, by the sign-in cookie or by a workspace's key, once; an
installation of another workspace is a 409, one GitHub does not know a 404, one the signed-in
user cannot use a 403; and a workspace sees only its own."""

from __future__ import annotations

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.github_browser import browser, github_org, github_user, install_app, installed, sign_in, unique
from tests.e2e.helpers import bearer, debug_dump, new_workspace

pytestmark = pytest.mark.e2e


def an_org_installation(stack: Stack, members: tuple[str, ...] = ()) -> tuple[str, int]:
    org = unique("org")
    github_org(stack, org)
    for login in members:
        github_user(stack, login, orgs=(org,))
    return org, install_app(stack, org)


def by_key(stack: Stack, key: str, installation_id: object, **params: str) -> httpx.Response:
    return httpx.get(
        f"{stack.gateway_url}/api/auth/github/installed",
        params={"installation_id": installation_id, **params},
        headers=bearer(key),
        timeout=30,
    )


def github_events(stack: Stack, workspace: dict[str, str]) -> list[dict]:
    events = debug_dump(stack, workspace["workspaceId"], bearer(workspace["apiKey"]))["events"]
    return [e for e in events if e["type"].startswith("github_installation")]


def test_a_signed_in_member_links_its_organizations_installation(stack: Stack) -> None:
    login = unique("ivy")
    org, installation = an_org_installation(stack, members=(login,))

    with browser() as client:
        sign_in(stack, client, login)
        first = installed(client, stack, installation)
        again = installed(client, stack, installation)

    assert first.status_code == 200, first.text
    linked = first.json()
    assert linked == {
        "installationId": installation,
        "workspaceId": linked["workspaceId"],
        "account": org,
        "accountType": "Organization",
        "repositorySelection": "all",
        "newlyLinked": True,
    }
    assert again.status_code == 200
    assert again.json() == {**linked, "newlyLinked": False}


def test_a_key_holder_links_an_installation_by_script(stack: Stack) -> None:
    workspace = new_workspace(stack, "install-by-key")
    org, installation = an_org_installation(stack)

    linked = by_key(stack, workspace["apiKey"], installation, setup_action="install")
    again = by_key(stack, workspace["apiKey"], installation)

    assert linked.status_code == 200, linked.text
    assert (linked.json()["workspaceId"], linked.json()["account"]) == (workspace["workspaceId"], org)
    assert linked.json()["newlyLinked"] is True
    assert again.json()["newlyLinked"] is False
    events = github_events(stack, workspace)
    assert [e["type"] for e in events] == ["github_installation.linked"]
    assert events[0]["payload"] == {
        "installation_id": installation,
        "app_id": 1,
        "account": org,
        "account_type": "Organization",
        "repository_selection": "all",
        "linked_by": f"key:{workspace['keyId']}",
    }


def test_an_installation_of_another_workspace_is_a_conflict_and_stays_where_it_is(stack: Stack) -> None:
    owner, other = new_workspace(stack, "install-owner"), new_workspace(stack, "install-other")
    login = unique("jack")
    _, installation = an_org_installation(stack, members=(login,))
    assert by_key(stack, owner["apiKey"], installation).status_code == 200

    by_other_key = by_key(stack, other["apiKey"], installation)
    with browser() as client:
        sign_in(stack, client, login)
        by_signed_in_member = installed(client, stack, installation)

    for refused in (by_other_key, by_signed_in_member):
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "installation_linked_elsewhere"
        assert owner["workspaceId"] not in refused.text  # another workspace is never named
    assert github_events(stack, other) == []
    assert len(github_events(stack, owner)) == 1


def test_an_installation_github_does_not_know_is_not_found(stack: Stack) -> None:
    workspace = new_workspace(stack, "install-unknown")

    unknown = by_key(stack, workspace["apiKey"], 9_999_999_999)

    assert unknown.status_code == 404
    assert unknown.json()["error"] == "Not found"
    assert github_events(stack, workspace) == []


def test_a_signed_in_user_cannot_link_an_installation_it_cannot_use(stack: Stack) -> None:
    outsider = unique("kate")
    github_user(stack, outsider)
    org, installation = an_org_installation(stack)  # an organization the user is no member of

    with browser() as client:
        sign_in(stack, client, outsider)
        refused = installed(client, stack, installation)
    # Nothing was linked: a key holder of another workspace still can.
    workspace = new_workspace(stack, "install-after-refusal")
    linked = by_key(stack, workspace["apiKey"], installation)

    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert org in refused.json()["message"]
    assert linked.status_code == 200
    assert linked.json()["newlyLinked"] is True


def test_bad_input_is_a_400_and_no_caller_a_401(stack: Stack) -> None:
    workspace = new_workspace(stack, "install-bad-input")
    url = f"{stack.gateway_url}/api/auth/github/installed"

    missing = httpx.get(url, headers=bearer(workspace["apiKey"]), timeout=10)
    cases = [missing] + [
        by_key(stack, workspace["apiKey"], value, **extra)
        for value, extra in (("abc", {}), (0, {}), (-1, {}), (2**63, {}), (5, {"setup_action": "bogus"}))
    ]
    nobody = httpx.get(url, params={"installation_id": 5}, timeout=10)

    for answer in cases:
        assert answer.status_code == 400, (answer.request.url, answer.text)
        assert set(answer.json()) == {"error", "message"}
        assert answer.json()["error"] == "invalid_request"
    assert nobody.status_code == 401
    assert nobody.headers["www-authenticate"].startswith("Bearer")
    assert github_events(stack, workspace) == []
