"""Spec 003's Fly settings through HTTP on the running stack, against the local Fly server: the
token written and never read back (not in a response, the events feed, the debug dump or a log), the
rest kept in the workspace's config; checked by a real call of the Machines API; bad bodies
refused changing nothing; each workspace seeing its own; and the startup check following."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, debug_dump, log_head, new_workspace, wait_quiet
from tests.e2e.test_credentials import read_feed

pytestmark = pytest.mark.e2e

NOT_CONFIGURED = {"configured": False, "last4": None}
NOTHING = {"apiToken": NOT_CONFIGURED, "app": None, "region": None, "image": None, "size": None}
IMAGE = "registry.fly.io/acme-workers:v3"


@pytest.fixture
def workspace(stack: Stack) -> dict[str, str]:
    return new_workspace(stack, "fly")


@pytest.fixture
def api(stack: Stack, workspace: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(workspace["apiKey"])) as client:
        yield client


def fly_app(stack: Stack) -> tuple[str, str]:
    """A new app of the local Fly server, and a token of the test's own that reaches it."""
    token = f"FlyV1 fm2_{uuid.uuid4().hex}{uuid.uuid4().hex},fm2_{uuid.uuid4().hex}F1y4"
    registered = stack.local_fly("/_apps", {"app": f"workers-{uuid.uuid4().hex[:8]}", "token": token})
    return registered["app"], token


def settings(app: str, token: str | None = None, **more: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"app": app, "region": "ams", "image": IMAGE, "size": "performance-2x", **more}
    if token is not None:
        body["apiToken"] = token
    return body


def test_the_token_is_stored_never_read_back_and_the_rest_is_the_workspaces_config(
    stack: Stack, api: httpx.Client, workspace: dict[str, str]
) -> None:
    assert api.get("/api/config/fly").json() == NOTHING
    app, token = fly_app(stack)

    stored = api.put("/api/config/fly", json=settings(app, token))

    expected = {
        "apiToken": {"configured": True, "last4": "F1y4"},
        "app": app,
        "region": "ams",
        "image": IMAGE,
        "size": "performance-2x",
    }
    assert stored.status_code == 200, stored.text
    assert stored.json() == expected
    assert api.get("/api/config/fly").json() == expected
    config = api.get(f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config").json()
    assert config == {"fly": {"app": app, "region": "ams", "image": IMAGE, "size": "performance-2x"}}


def test_a_put_without_a_token_keeps_it_null_clears_it_and_a_size_left_out_is_the_smallest(
    stack: Stack, api: httpx.Client
) -> None:
    app, token = fly_app(stack)
    assert api.put("/api/config/fly", json=settings(app, token)).status_code == 200

    kept = api.put("/api/config/fly", json={"app": app, "region": "iad", "image": IMAGE})
    cleared = api.put("/api/config/fly", json=settings(app, apiToken=None))

    assert kept.status_code == 200, kept.text
    assert kept.json()["apiToken"] == {"configured": True, "last4": "F1y4"}
    assert (kept.json()["region"], kept.json()["size"]) == ("iad", "shared-cpu-1x")
    assert cleared.json() == {**kept.json(), "apiToken": NOT_CONFIGURED, "region": "ams", "size": "performance-2x"}
    assert api.get("/api/config/fly").json() == cleared.json()


def test_validate_calls_fly_with_the_stored_token_and_app(stack: Stack, api: httpx.Client) -> None:
    app, token = fly_app(stack)
    missing = api.post("/api/config/validate/fly")
    assert missing.status_code == 404 and "PUT /api/config/fly" in missing.json()["message"]
    assert api.put("/api/config/fly", json=settings(app, token)).status_code == 200

    stored = api.post("/api/config/validate/fly")
    others, other_token = fly_app(stack)
    given = api.post("/api/config/validate/fly", json={"apiToken": other_token, "app": others})

    assert stored.status_code == 200, stored.text
    assert stored.json() == {"valid": True}
    assert given.json() == {"valid": True}


def test_validate_says_when_fly_refuses_the_token_or_knows_no_such_app(stack: Stack, api: httpx.Client) -> None:
    app, token = fly_app(stack)
    others, _ = fly_app(stack)  # another organization's: this token does not reach it
    assert api.put("/api/config/fly", json=settings(app, token)).status_code == 200
    wrong = f"fly-token-{uuid.uuid4().hex}{uuid.uuid4().hex}"

    refused = api.post("/api/config/validate/fly", json={"apiToken": wrong})
    unknown = api.post("/api/config/validate/fly", json={"app": "no-such-app"})
    not_theirs = api.post("/api/config/validate/fly", json={"app": others})

    assert refused.json() == {"valid": False, "error": "Fly refused the token (HTTP 401: unauthorized)"}
    assert wrong[10:] not in refused.text
    for answer, name in ((unknown, "no-such-app"), (not_theirs, others)):
        assert answer.status_code == 200
        assert answer.json() == {
            "valid": False,
            "error": f"Fly knows no app {name} that the token can reach (HTTP 404: app not found)",
        }


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"app": "Acme_Workers", "region": "ams", "image": IMAGE}, "$.app"),
        ({"app": "-workers", "region": "ams", "image": IMAGE}, "$.app"),
        ({"app": "workers", "region": "amsterdam", "image": IMAGE}, "$.region"),
        ({"app": "workers", "region": "ams", "image": "with space"}, "$.image"),
        ({"app": "workers", "region": "ams", "image": IMAGE, "size": "huge-cpu-9x"}, "$.size"),
        ({"app": "workers", "region": "ams", "image": IMAGE, "apiToken": "short"}, "$.apiToken"),
        ({"app": "workers", "region": "ams", "image": IMAGE, "apiToken": "fly token with spaces"}, "$.apiToken"),
        ({"app": "workers", "region": "ams"}, "image"),
        ({"app": "workers", "region": "ams", "image": IMAGE, "org": "acme"}, "org"),
    ],
)
def test_a_body_that_is_not_valid_is_a_400_naming_the_field_and_changes_nothing(
    stack: Stack, api: httpx.Client, body: dict[str, Any], named: str
) -> None:
    head = log_head(stack)

    response = api.put("/api/config/fly", json=body)

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "message"}
    assert named in response.json()["message"]
    assert log_head(stack) == head
    assert api.get("/api/config/fly").json() == NOTHING
    bad_check = api.post("/api/config/validate/fly", json={"app": "Not An App"})
    assert bad_check.status_code == 400 and "app" in bad_check.json()["message"]


def test_another_workspace_sees_none_of_it(stack: Stack, api: httpx.Client) -> None:
    app, token = fly_app(stack)
    assert api.put("/api/config/fly", json=settings(app, token)).status_code == 200
    other = new_workspace(stack, "fly-other")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(other["apiKey"])) as theirs:
        assert theirs.get("/api/config/fly").json() == NOTHING
        nothing_stored = theirs.post("/api/config/validate/fly")
        config = theirs.get(f"/api/v1/workspaces/{other['workspaceId']}/orchestration/config").json()

    assert nothing_stored.status_code == 404
    assert config == {}


def test_the_token_is_in_no_response_event_of_the_feed_the_dump_or_a_log(
    stack: Stack, api: httpx.Client, workspace: dict[str, str]
) -> None:
    app, token = fly_app(stack)
    answers = [
        api.put("/api/config/fly", json=settings(app, token)),
        api.get("/api/config/fly"),
        api.post("/api/config/validate/fly"),
        api.post("/api/config/validate/fly", json={"apiToken": token, "app": app}),
        api.get("/api/config"),
        api.get(f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config"),
        api.get("/api/startup/check"),
    ]
    assert [a.status_code for a in answers] == [200] * len(answers)
    wait_quiet(stack)
    dump = debug_dump(stack, workspace["workspaceId"], api.headers)
    feed = read_feed(stack, workspace, max(e["seq"] for e in dump["events"]))

    # Whole, without its scheme, and each of its macaroons but the four characters a read shows.
    needles = [token, token.removeprefix("FlyV1 "), *(part[:-4] for part in token.removeprefix("FlyV1 ").split(","))]
    places = {
        "responses": b"\n".join(a.content for a in answers).decode(),
        "events feed": feed,
        "debug dump": httpx.Response(200, json=dump).text,
        **{f"log {p.name}": p.read_text(errors="replace") for p in (stack.data_dir / "logs").glob("*.log")},
    }
    for place, content in places.items():
        for needle in needles:
            assert needle not in content, f"the Fly token in clear in the {place}"
    events = [(e["type"], e["payload"]) for e in dump["events"] if e["type"].startswith("workspace.")]
    assert ("workspace.secret_set", {"name": "fly_api_token", "last4": "F1y4"}) in events
    # The token and the settings were one write: both events, side by side.
    kinds = [kind for kind, _ in events]
    at = kinds.index("workspace.secret_set")
    assert kinds[at + 1] == "workspace.config_updated"


def test_the_startup_check_says_fly_is_missing_until_a_token_and_app_are_stored(
    stack: Stack, api: httpx.Client
) -> None:
    def fly_item() -> dict[str, Any]:
        answer = api.get("/api/startup/check")
        assert answer.status_code == 200, answer.text
        (item,) = [c for c in answer.json()["checks"] if c["name"] == "fly"]
        return item  # type: ignore[no-any-return]

    app, token = fly_app(stack)
    before = fly_item()
    assert api.put("/api/config/fly", json=settings(app)).status_code == 200
    app_only = fly_item()
    assert api.put("/api/config/fly", json=settings(app, token)).status_code == 200
    after = fly_item()

    assert (before["status"], before["required"]) == ("missing", False)
    assert before["detail"].endswith("your workspace has no Fly API token and no Fly app")
    assert "PUT /api/config/fly" in before["fix"]
    assert app_only["status"] == "missing"
    assert app_only["detail"].endswith("your workspace has no Fly API token")
    assert after["status"] == "ok" and "fix" not in after
    assert app not in str(after) and token[10:] not in str(after)


def test_a_fly_that_cannot_be_reached_is_said_so(stack: Stack, api: httpx.Client) -> None:
    app, token = fly_app(stack)
    stack.services["gateway"].stop()
    try:
        stack.restart_service("gateway", env={"FLY_API_URL": "http://127.0.0.1:9"})
        answer = api.post("/api/config/validate/fly", json={"apiToken": token, "app": app})
    finally:
        stack.services["gateway"].stop()
        stack.restart_service("gateway")

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "valid": False,
        "error": "Fly could not be reached at http://127.0.0.1:9 (ConnectError)",
    }


def test_spec_001s_config_patch_checks_the_fly_key_alike(
    stack: Stack, api: httpx.Client, workspace: dict[str, str]
) -> None:
    url = f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config"
    head = log_head(stack)

    refused = api.patch(url, json={"fly": {"app": "Acme_Workers", "region": "ams", "image": IMAGE}})
    accepted = api.patch(url, json={"fly": {"app": "acme-workers", "region": "ams", "image": IMAGE}})

    assert refused.status_code == 400 and "fly" in refused.json()["message"]
    assert accepted.status_code == 200, accepted.text
    assert log_head(stack) > head
    # No token stored: the settings are there, the token is not.
    assert api.get("/api/config/fly").json() == {
        **NOTHING,
        "app": "acme-workers",
        "region": "ams",
        "image": IMAGE,
        "size": "shared-cpu-1x",
    }
