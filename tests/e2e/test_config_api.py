"""Spec 003's `/api/config` through HTTP on the running stack: a workspace's settings read and
replaced, stored in the same config spec 001 shows, bad input refused naming the field and
changing nothing, and each workspace seeing its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, debug_dump, log_head, new_workspace

pytestmark = pytest.mark.e2e

DEFAULTS = {"commandPrefix": "/agent", "defaultAgentConfig": {}, "allowedRepositories": []}
SETTINGS = {
    "commandPrefix": "/bot",
    "defaultAgentConfig": {"model": "claude-sonnet-4-6", "maxTokens": 8000, "temperature": 0, "maxRetries": 1},
    "allowedRepositories": ["acme/api", "acme-labs/*"],
}


@pytest.fixture
def workspace(stack: Stack) -> dict[str, str]:
    return new_workspace(stack, "config")


@pytest.fixture
def api(stack: Stack, workspace: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(workspace["apiKey"])) as client:
        yield client


def spec_001_config(api: httpx.Client, workspace: dict[str, str]) -> dict[str, Any]:
    response = api.get(f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config")
    assert response.status_code == 200, response.text
    return response.json()


def test_a_new_workspace_reads_the_defaults(api: httpx.Client) -> None:
    response = api.get("/api/config")

    assert response.status_code == 200
    assert response.json() == DEFAULTS


def test_put_replaces_the_settings_in_the_config_spec_001_shows_and_leaves_its_other_keys(
    stack: Stack, api: httpx.Client, workspace: dict[str, str]
) -> None:
    url = f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config"
    assert api.patch(url, json={"budgetUsd": 5, "commandPrefix": "/old"}).status_code == 200

    put = api.put("/api/config", json=SETTINGS)

    assert put.status_code == 200, put.text
    assert put.json() == SETTINGS
    assert api.get("/api/config").json() == SETTINGS
    assert spec_001_config(api, workspace) == {"budgetUsd": 5, **SETTINGS}
    updates = [
        e["payload"]
        for e in debug_dump(stack, workspace["workspaceId"], api.headers)["events"]
        if e["type"] == "workspace.config_updated"
    ]
    # The event records the change as a merge patch, and the whole config it led to.
    assert updates[-1] == {"changes": SETTINGS, "config": {"budgetUsd": 5, **SETTINGS}}


def test_a_setting_left_out_of_a_put_goes_back_to_its_default(api: httpx.Client, workspace: dict[str, str]) -> None:
    assert api.put("/api/config", json=SETTINGS).status_code == 200

    response = api.put("/api/config", json={"commandPrefix": "/bot"})

    assert response.status_code == 200
    assert response.json() == {**DEFAULTS, "commandPrefix": "/bot"}
    assert spec_001_config(api, workspace) == {"commandPrefix": "/bot"}
    assert api.put("/api/config", json={}).json() == DEFAULTS
    assert spec_001_config(api, workspace) == {}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"commandPrefix": "/agent please"}, "$.commandPrefix"),
        ({"commandPrefix": ""}, "$.commandPrefix"),
        ({"defaultAgentConfig": {"maxTokens": "100"}}, "$.defaultAgentConfig.maxTokens"),
        ({"defaultAgentConfig": {"maxTokens": 0}}, "$.defaultAgentConfig.maxTokens"),
        ({"defaultAgentConfig": {"provider": "mistral"}}, "$.defaultAgentConfig.provider"),
        ({"defaultAgentConfig": {"modle": "claude"}}, "modle"),
        ({"allowedRepositories": ["acme"]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": ["acme/api", "../etc"]}, "$.allowedRepositories[1]"),
        ({"allowedRepositories": "acme/api"}, "$.allowedRepositories"),
        ({"commandPrefixes": "/bot"}, "commandPrefixes"),
    ],
)
def test_a_setting_that_is_not_valid_is_a_400_naming_it_and_changes_nothing(
    stack: Stack, api: httpx.Client, body: dict[str, Any], named: str
) -> None:
    assert api.put("/api/config", json=SETTINGS).status_code == 200
    head = log_head(stack)

    response = api.put("/api/config", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert named in response.json()["message"]
    assert api.get("/api/config").json() == SETTINGS
    assert log_head(stack) == head


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"commandPrefix": "/a\\u0000b"}', b"\xff\xfe"],
)
def test_a_body_that_is_not_a_settings_object_is_a_400(api: httpx.Client, content: bytes) -> None:
    response = api.put("/api/config", content=content, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "message"}
    assert api.get("/api/config").json() == DEFAULTS


def test_spec_001s_patch_checks_the_settings_as_put_does(api: httpx.Client, workspace: dict[str, str]) -> None:
    url = f"/api/v1/workspaces/{workspace['workspaceId']}/orchestration/config"

    refused = api.patch(url, json={"allowedRepositories": ["not a repository"]})

    assert refused.status_code == 400
    assert "$.allowedRepositories[0]" in refused.json()["message"]
    agent_config = {"model": "gpt-5.4", "provider": "openai"}
    assert api.patch(url, json={"defaultAgentConfig": agent_config}).status_code == 200
    assert api.get("/api/config").json() == {**DEFAULTS, "defaultAgentConfig": agent_config}


def test_each_workspace_reads_and_writes_its_own_settings(stack: Stack, api: httpx.Client) -> None:
    other = new_workspace(stack, "config-other")
    assert api.put("/api/config", json=SETTINGS).status_code == 200

    theirs = httpx.get(f"{stack.gateway_url}/api/config", headers=bearer(other["apiKey"]), timeout=10)

    assert theirs.json() == DEFAULTS
    assert api.get("/api/config").json() == SETTINGS


def test_the_settings_need_a_valid_key(stack: Stack) -> None:
    for method in ("GET", "PUT"):
        response = httpx.request(method, f"{stack.gateway_url}/api/config", json=SETTINGS, timeout=10)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
