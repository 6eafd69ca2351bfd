"""Signing in with GitHub through HTTP on the real stack, a browser's way: from the gateway to the
local GitHub server and back, cookies kept. The first sign-in makes the user a workspace, later
ones find it; the cookie authenticates spec 003's /api/* routes and not the others; a state that
is not the browser's, or used, and a code used before are refused; logout ends it; and no token
or secret reaches a response, an event, the dump or a log."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest

from libs.devstack.stack import LOCAL_GITHUB_CLIENT_ID, Stack
from libs.web.session import COOKIE
from tests.e2e.github_browser import (
    browser,
    github_org,
    github_user,
    install_app,
    installed,
    sign_in,
    unique,
)
from tests.e2e.helpers import bearer, debug_dump, task_request

pytestmark = pytest.mark.e2e


def admin(stack: Stack) -> dict[str, str]:
    return bearer(stack.admin_token)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def an_installation_of_the_users_org(stack: Stack, login: str) -> int:
    org = unique("org")
    github_org(stack, org)
    github_user(stack, login, orgs=(org,))
    return install_app(stack, org)


def test_signing_in_goes_to_github_and_back_and_makes_the_user_a_workspace(stack: Stack) -> None:
    login = unique("alice")
    installation = an_installation_of_the_users_org(stack, login)

    with browser() as client:
        hops = sign_in(stack, client, login)
        linked = installed(client, stack, installation)

    start, authorize, callback = hops[0], hops[1], hops[-1]
    # To GitHub with the App's client id, where to come back, and a random state...
    to_github = urlsplit(start.headers["location"])
    assert (start.status_code, f"{to_github.scheme}://{to_github.netloc}") == (302, stack.github_url)
    assert to_github.path == "/login/oauth/authorize"
    asked = query_of(start.headers["location"])
    assert asked["client_id"] == [LOCAL_GITHUB_CLIENT_ID]
    assert asked["redirect_uri"] == [f"{stack.public_url}/api/auth/github/callback"]
    assert len(asked["state"][0]) >= 32
    # ...kept in the sign-in cookie: HttpOnly, SameSite=Lax, not Secure on a plain-http URL.
    cookie = start.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE}=") and "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie
    # GitHub sends the browser back with a code and the same state; the callback signs it in.
    back = query_of(authorize.headers["location"])
    assert back["state"] == asked["state"] and back["code"]
    assert (callback.status_code, callback.headers["location"]) == (302, f"{stack.public_url}/")
    # Signed in: the cookie is the caller, in the workspace the sign-in made for the user.
    assert linked.status_code == 200, linked.text
    workspace = linked.json()["workspaceId"]
    assert workspace.startswith("ws_")
    made = httpx.get(f"{stack.gateway_url}/admin/workspaces/{workspace}", headers=admin(stack), timeout=10)
    assert made.status_code == 200
    assert made.json()["name"] == login


def test_a_later_sign_in_finds_the_users_workspace(stack: Stack) -> None:
    login = unique("bob")
    installation = an_installation_of_the_users_org(stack, login)

    with browser() as first:
        sign_in(stack, first, login)
        workspace = installed(first, stack, installation).json()["workspaceId"]
    with browser() as later:
        sign_in(stack, later, login)
        again = installed(later, stack, installation)

    assert again.status_code == 200, again.text
    assert again.json()["workspaceId"] == workspace
    assert again.json()["newlyLinked"] is False
    key = httpx.post(
        f"{stack.gateway_url}/admin/workspaces/{workspace}/keys", json={}, headers=admin(stack), timeout=10
    ).json()["apiKey"]
    events = [e for e in debug_dump(stack, workspace, bearer(key))["events"] if e["type"].startswith("github_account")]
    assert [e["type"] for e in events] == ["github_account.linked", "github_account.signed_in"]
    assert {e["payload"]["login"] for e in events} == {login}


def test_the_cookie_authenticates_spec_003_routes_and_not_the_others(stack: Stack) -> None:
    login = unique("carol")
    installation = an_installation_of_the_users_org(stack, login)

    with browser() as client:
        before = installed(client, stack, installation)
        sign_in(stack, client, login)
        after = installed(client, stack, installation)
        workspace = after.json()["workspaceId"]
        spec_001 = client.get(f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration/config")
        spec_000 = client.get(f"{stack.gateway_url}/costs")
        spec_004 = client.get(f"{stack.gateway_url}/api/v1/orchestrations")
        # Forwarded to the stream service and the runtime, the cookie does not go with them.
        feed = client.get(f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration/events/connections")
        sessions = client.get(f"{stack.gateway_url}/api/v1/workspaces/{workspace}/agent-sessions")

    assert before.status_code == 401
    assert before.json()["error"] == "unauthorized"
    assert after.status_code == 200, after.text
    for refused in (spec_001, spec_000, spec_004, feed, sessions):
        assert refused.status_code == 401, refused.request.url
        assert refused.json()["error"] == "unauthorized"


def test_the_cookie_creates_and_lists_the_signed_in_users_own_tasks(stack: Stack) -> None:
    login = unique("heidi")
    installation = an_installation_of_the_users_org(stack, login)
    description = f"Made by {login} in the browser"

    with browser() as client:
        sign_in(stack, client, login)
        workspace = installed(client, stack, installation).json()["workspaceId"]
        body = {"tasks": [task_request(description)]}
        cross_site = client.post(f"{stack.gateway_url}/api/tasks", json=body)
        created = client.post(f"{stack.gateway_url}/api/tasks", json=body, headers={"X-Requested-With": "fetch"})
        listed = client.get(f"{stack.gateway_url}/api/tasks")

    assert cross_site.status_code == 403, "a change by cookie alone needs X-Requested-With"
    assert created.status_code == 201, created.text
    (task_id,) = created.json()["taskIds"]
    assert listed.status_code == 200, listed.text
    assert [(t["id"], t["description"]) for t in listed.json()["tasks"]] == [(task_id, description)]
    # The task is the user's workspace's: its key finds it, another workspace's does not.
    key = httpx.post(
        f"{stack.gateway_url}/admin/workspaces/{workspace}/keys", json={}, headers=admin(stack), timeout=10
    ).json()["apiKey"]
    status = f"{stack.gateway_url}/api/tasks/{task_id}/status"
    assert httpx.get(status, headers=bearer(key), timeout=10).status_code == 200
    assert httpx.get(status, headers=stack.auth, timeout=10).status_code == 404


def test_a_state_that_is_not_this_browsers_or_was_used_is_refused(stack: Stack) -> None:
    login = unique("dave")
    github_user(stack, login)

    with browser() as victim, browser() as attacker:
        # The attacker's sign-in, stopped at GitHub's answer: its callback URL, with its code.
        attacker.post(f"{stack.github_url}/_session", json={"login": login})
        to_github = attacker.get(f"{stack.gateway_url}/api/auth/github")
        attackers_callback = attacker.get(to_github.headers["location"]).headers["location"]
        # The victim's browser, sent to that URL, has no sign-in under way, then one of its own.
        no_sign_in = victim.get(attackers_callback)
        victim.get(f"{stack.gateway_url}/api/auth/github")
        other_state = victim.get(attackers_callback)
        # The attacker's own callback works once; the same URL again is refused.
        first = attacker.get(attackers_callback)
        replayed = attacker.get(attackers_callback)

    for refused in (no_sign_in, other_state):
        assert refused.status_code == 400
        assert refused.json()["error"] == "invalid_state"
        assert f"start again at {stack.public_url}/api/auth/github" in refused.json()["message"]
    assert (first.status_code, first.headers["location"]) == (302, f"{stack.public_url}/")
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_state"


def test_a_code_used_before_is_refused_by_github_and_signs_nobody_in(stack: Stack) -> None:
    login = unique("erin")
    installation = an_installation_of_the_users_org(stack, login)

    with browser() as client:
        hops = sign_in(stack, client, login)
        used_code = query_of(hops[-2].headers["location"])["code"][0]
    with browser() as replayer:
        # A fresh sign-in under way, so its state is good: only the code is stale.
        to_github = replayer.get(f"{stack.gateway_url}/api/auth/github")
        state = query_of(to_github.headers["location"])["state"][0]
        reused = replayer.get(
            f"{stack.gateway_url}/api/auth/github/callback", params={"code": used_code, "state": state}
        )
        still_out = installed(replayer, stack, installation)

    assert reused.status_code == 400
    assert reused.json()["error"] == "sign_in_refused"
    assert "bad_verification_code" in reused.json()["message"]
    assert still_out.status_code == 401


def test_a_person_who_declines_on_github_is_told_so(stack: Stack) -> None:
    with browser() as client:
        to_github = client.get(f"{stack.gateway_url}/api/auth/github")
        state = query_of(to_github.headers["location"])["state"][0]
        declined = client.get(
            f"{stack.gateway_url}/api/auth/github/callback", params={"error": "access_denied", "state": state}
        )

    assert declined.status_code == 400
    assert declined.json() == {"error": "sign_in_refused", "message": "GitHub did not sign you in: access_denied"}


def test_logout_ends_the_sign_in_and_needs_the_custom_header(stack: Stack) -> None:
    login = unique("frank")
    installation = an_installation_of_the_users_org(stack, login)

    with browser() as client:
        sign_in(stack, client, login)
        cross_site = client.post(f"{stack.gateway_url}/api/auth/logout")
        still_in = installed(client, stack, installation)
        logout = client.post(f"{stack.gateway_url}/api/auth/logout", headers={"X-Requested-With": "fetch"})
        out = installed(client, stack, installation)
        again = client.post(f"{stack.gateway_url}/api/auth/logout", headers={"X-Requested-With": "fetch"})

    assert cross_site.status_code == 403
    assert "X-Requested-With" in cross_site.json()["message"]
    assert still_in.status_code == 200
    assert logout.status_code == 204
    assert f"{COOKIE}=null" in logout.headers["set-cookie"]
    assert out.status_code == 401
    assert again.status_code == 204  # nothing to end is fine


def test_diagnostics_say_what_is_configured_and_show_no_secret(stack: Stack) -> None:
    answer = httpx.get(f"{stack.gateway_url}/api/auth/diagnostics", timeout=10)

    assert answer.status_code == 200
    body = answer.json()
    assert (body["signIn"], body["installations"]) == ("ready", "ready")
    settings = {s["name"]: s for s in body["settings"]}
    for name in ("GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET", "SESSION_SECRET", "PUBLIC_URL"):
        assert settings[name]["status"] == "configured", name
        assert settings[name]["purpose"], name
    for name in ("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_WEB_URL", "GITHUB_API_URL"):
        assert settings[name]["status"] == "configured", name
    for secret in secrets_of(stack):
        assert secret not in answer.text
    assert stack.github_url not in answer.text and LOCAL_GITHUB_CLIENT_ID not in answer.text


def secrets_of(stack: Stack) -> list[str]:
    key_lines = [line for line in stack.github_app_key.splitlines() if "-----" not in line]
    return [stack.session_secret, stack.github_client_secret, *key_lines]


def test_no_token_or_secret_reaches_an_event_the_dump_or_a_log(stack: Stack) -> None:
    login = unique("grace")
    installation = an_installation_of_the_users_org(stack, login)
    with browser() as client:
        sign_in(stack, client, login)
        workspace = installed(client, stack, installation).json()["workspaceId"]
        cookie = client.cookies[COOKIE]
    key = httpx.post(
        f"{stack.gateway_url}/admin/workspaces/{workspace}/keys", json={}, headers=admin(stack), timeout=10
    ).json()["apiKey"]

    dump = httpx.get(
        f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/debug-dump", headers=bearer(key), timeout=10
    ).text
    with psycopg.connect(stack.database_url) as conn:
        stored = "\n".join(str(row[0]) for row in conn.execute("SELECT state FROM orchestrator_events").fetchall())
    logs = "\n".join(path.read_text(errors="replace") for path in (stack.data_dir / "logs").glob("*.log"))

    assert "github_account.linked" in dump and "github_installation.linked" in dump
    for place, text in {"dump": dump, "events": stored, "logs": logs}.items():
        # GitHub's user tokens (ghu_...) live only in the encrypted cookie; nor is the cookie anywhere.
        assert "ghu_" not in text, place
        assert cookie not in text, place
        for secret in secrets_of(stack):
            assert secret not in text, place
