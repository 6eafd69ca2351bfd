"""Spawn and the session lifecycle (spec 002, issue 16): a session spawns children within its
spawn budget and permissions, each refusal a diagnostic that names the limit or the permission
and records nothing; a parent's stop takes the children that asked for it; a child past its TTL
stops; lineage shows on every view. HTTP only, each test in a workspace of its own."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, debug_dump, log_head, new_workspace
from tests.e2e.test_agent_sessions import assert_diagnostic, me, new_session, sessions_url

pytestmark = pytest.mark.e2e

# The keys of spec 002's spawn answer, and of its session.
SPAWN_KEYS = {"lineage", "permissions", "session"}
SESSION_KEYS = {
    "acp_caps",
    "acp_session_id",
    "activity",
    "agent_name",
    "attach_expires_at",
    "attachable",
    "attached_to",
    "badge",
    "channel",
    "created_at",
    "failure",
    "health",
    "id",
    "lineage",
    "model",
    "name",
    "provider",
    "reasoning_effort",
    "sandbox",
    "state",
    "stop_detail",
    "stop_reason",
    "type",
    "updated_at",
    "workspace_id",
    "workspace_path",
}
LINEAGE_KEYS = {
    "auto_stop_on_parent",
    "parent_session_id",
    "permission_policy",
    "root_session_id",
    "spawn_budget",
    "spawn_depth",
    "spawn_role",
    "ttl_expires_at",
}
COORDINATOR_KEYS = {
    "agent_name",
    "default_ttl_seconds",
    "enabled",
    "max_active_sessions_per_workspace",
    "max_children",
    "model",
    "provider",
    "source",
    "workspace_id",
}


class Workspace:
    """A workspace of the test's own: its id, its key's header, and its root sessions."""

    def __init__(self, stack: Stack, prefix: str) -> None:
        made = new_workspace(stack, prefix)
        self.stack, self.id, self.key = stack, made["workspaceId"], bearer(made["apiKey"])

    def root(self, **body: Any) -> tuple[dict[str, Any], str]:
        """A session made by the key holder: its view and its token."""
        made = new_session(self.stack, self.id, self.key, **body)
        assert made.status_code == 201, made.text
        return made.json()["session"], made.json()["token"]

    def session(self, session_id: str) -> dict[str, Any]:
        response = httpx.get(f"{sessions_url(self.stack, self.id)}/{session_id}", headers=self.key, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self, session_id: str) -> httpx.Response:
        return httpx.delete(f"{sessions_url(self.stack, self.id)}/{session_id}", headers=self.key, timeout=10)

    def listed(self, **params: Any) -> list[dict[str, Any]]:
        response = httpx.get(sessions_url(self.stack, self.id), headers=self.key, params=params, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["sessions"]


def spawn(stack: Stack, token: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{stack.runtime_url}/api/agent/spawn", json=body, headers=bearer(token), timeout=30)


def spawned(stack: Stack, token: str, **body: Any) -> tuple[dict[str, Any], str]:
    response = spawn(stack, token, **body)
    assert response.status_code == 201, response.text
    return response.json()["spawn"], response.json()["token"]


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    diagnostic = assert_diagnostic(response, status, code)
    assert diagnostic["suggested_command"], "a refusal says what to do instead"
    return diagnostic


def wait_stopped(stack: Stack, token: str, timeout: float = 10.0) -> dict[str, Any]:
    """The diagnostic the session's token gets once it is stopped."""
    deadline = time.monotonic() + timeout
    while (answer := me(stack, token)).status_code == 200:
        assert time.monotonic() < deadline, "the session was not stopped"
        time.sleep(0.1)
    return assert_diagnostic(answer, 403, "session_stopped")


BUDGET = {"max_children": 2, "max_depth": 2, "max_active_per_workspace": 50, "ttl_seconds": 600}
PERMISSIONS = {"tools": ["read", "write", "shell"], "skills": ["python"], "workspace_paths": ["src"]}


def test_a_child_is_spawned_with_its_lineage_on_every_view(stack: Stack) -> None:
    ws = Workspace(stack, "spawn")
    root, token = ws.root(
        name="lead", agent_name="coder", model="m1", provider="anthropic", permissions=PERMISSIONS, spawn_budget=BUDGET
    )
    asked = {"tools": ["read", "read"], "workspace_paths": ["src/api"]}

    answer, child_token = spawned(stack, token, spawn_role="reviewer", permissions=asked, ttl_seconds=300)

    assert set(answer) == SPAWN_KEYS and set(answer["session"]) == SESSION_KEYS
    child = answer["session"]
    lineage = answer["lineage"]
    assert set(lineage) == LINEAGE_KEYS and child["lineage"] == lineage
    assert lineage["root_session_id"] == root["id"] and lineage["parent_session_id"] == root["id"]
    assert lineage["spawn_depth"] == 1 and lineage["spawn_role"] == "reviewer" and lineage["auto_stop_on_parent"]
    assert lineage["spawn_budget"] == BUDGET, "a child inherits its parent's budget"
    assert lineage["ttl_expires_at"] and child["activity"]["deadline_at"] == lineage["ttl_expires_at"]
    granted = {"tools": ["read"], "skills": [], "mcp_servers": [], "network_channels": [], "sandbox_profiles": []}
    assert answer["permissions"] == granted | {"workspace_paths": ["src/api"]} == lineage["permission_policy"]
    assert child["type"] == "spawned" and child["state"] == "idle" and child["workspace_id"] == ws.id
    assert (child["agent_name"], child["model"], child["provider"]) == ("coder", "m1", "anthropic")
    assert child["health"]["health"] == "healthy" and child["health"]["session_id"] == child["id"]
    # The child acts with its own token, and every view shows its lineage.
    mine = me(stack, child_token).json()["me"]
    assert mine["session"]["lineage"] == lineage and mine["session"]["id"] == child["id"]
    assert mine["limits"]["max_children"] == 2 and mine["limits"]["max_spawn_depth"] == 2
    shown = ws.session(child["id"])
    assert shown["lineage"] == lineage and shown["created_at"] == child["created_at"]
    listed = {s["id"]: s for s in ws.listed()}
    assert set(listed) == {root["id"], child["id"]}
    assert listed[child["id"]]["lineage"] == lineage and listed[root["id"]]["lineage"] == root["lineage"]
    assert [s["id"] for s in ws.listed(parent_session_id=root["id"])] == [child["id"]]
    parent = me(stack, token).json()["me"]["session"]
    assert parent["lineage"]["permission_policy"]["tools"] == ["read", "write", "shell"]
    assert parent["updated_at"] > root["updated_at"], "the parent recorded its child"
    feed = [e["type"] for e in debug_dump(stack, ws.id, ws.key)["events"]]
    assert feed.count("agent_session.created") == 2 and "agent_session.child_spawned" in feed


def test_a_child_without_permissions_or_ttl_gets_its_parents(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-inherit")
    _, token = ws.root(permissions=PERMISSIONS, spawn_budget=BUDGET)

    answer, _ = spawned(stack, token)

    assert {k: v for k, v in answer["permissions"].items() if v} == PERMISSIONS
    assert answer["lineage"]["auto_stop_on_parent"] is True
    assert answer["session"]["agent_name"] == "agent" and answer["session"]["name"] == "agent"
    ends = answer["lineage"]["ttl_expires_at"]
    created = answer["session"]["created_at"]
    assert ends > created, "the budget's ttl_seconds is the default TTL"


def test_a_wider_permission_is_refused_naming_it_and_records_nothing(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-perm")
    _, token = ws.root(permissions=PERMISSIONS, spawn_budget=BUDGET)
    head = log_head(stack)

    for asked, kind, item in (
        ({"tools": ["read", "deploy"]}, "tools", "deploy"),
        ({"mcp_servers": ["github"]}, "mcp_servers", "github"),
        ({"workspace_paths": ["srcx"]}, "workspace_paths", "srcx"),
        ({"workspace_paths": ["."]}, "workspace_paths", "."),
    ):
        diagnostic = refused(spawn(stack, token, permissions=asked), 403, "permission_not_allowed")
        assert diagnostic["category"] == "permission"
        assert diagnostic["evidence"]["permissions"] == {kind: [item]}
        assert kind in diagnostic["message"] and item in diagnostic["message"]
    assert log_head(stack) == head, "nothing was recorded"


def test_each_budget_limit_refuses_with_a_diagnostic_naming_it(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-limits")
    _, token = ws.root(spawn_budget={"max_children": 1, "max_depth": 1, "ttl_seconds": 60})
    head = log_head(stack)

    too_long = refused(spawn(stack, token, ttl_seconds=61), 403, "ttl_seconds_exceeded")
    assert too_long["evidence"] == {"limit": "ttl_seconds", "allowed": 60, "actual": 61}
    assert too_long["category"] == "limit" and "60" in too_long["suggested_command"]
    assert log_head(stack) == head
    _, child_token = spawned(stack, token)
    too_many = refused(spawn(stack, token), 429, "max_children_exceeded")
    assert too_many["evidence"] == {"limit": "max_children", "allowed": 1, "actual": 1}
    too_deep = refused(spawn(stack, child_token), 403, "max_depth_exceeded")
    assert too_deep["evidence"] == {"limit": "max_depth", "allowed": 1, "actual": 2}
    none = Workspace(stack, "spawn-none")
    _, lone = none.root(spawn_budget={"max_children": 0})
    refused(spawn(stack, lone), 403, "max_children_exceeded")


def test_a_stopped_child_frees_its_place(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-free")
    _, token = ws.root(spawn_budget={"max_children": 1})
    first, _ = spawned(stack, token)
    refused(spawn(stack, token), 429, "max_children_exceeded")

    assert ws.stop(first["session"]["id"]).status_code == 200

    spawned(stack, token)


def test_the_workspace_limit_counts_every_session_not_stopped(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-active")
    _, token = ws.root(spawn_budget={"max_children": 5, "max_active_per_workspace": 3})
    other, _ = ws.root(name="another")
    spawned(stack, token)  # three sessions now

    diagnostic = refused(spawn(stack, token), 429, "max_active_per_workspace_exceeded")

    assert diagnostic["evidence"] == {"limit": "max_active_per_workspace", "allowed": 3, "actual": 3}
    assert ws.stop(other["id"]).status_code == 200
    spawned(stack, token)


def test_concurrent_spawns_never_pass_a_limit_together(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-race")
    _, token = ws.root(spawn_budget={"max_children": 3, "max_active_per_workspace": 6})
    _, other = ws.root(name="second", spawn_budget={"max_children": 5, "max_active_per_workspace": 6})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda t: spawn(stack, t).status_code, [token] * 8 + [other] * 8))

    mine, theirs = answers[:8], answers[8:]
    assert mine.count(201) <= 3 and set(mine) <= {201, 429}
    assert mine.count(201) + theirs.count(201) == 4, "two roots and four children: the workspace's six"
    assert set(theirs) <= {201, 429}
    children = [s for s in ws.listed(state="idle") if s["type"] == "spawned"]
    assert len(children) == 4


def test_a_parents_stop_takes_the_children_that_asked_for_it(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-stop")
    root, token = ws.root(spawn_budget=BUDGET)
    helper, helper_token = spawned(stack, token, spawn_role="helper")
    grandchild, grandchild_token = spawned(stack, helper_token, spawn_role="sub-helper")
    stays, stays_token = spawned(stack, token, spawn_role="survivor", auto_stop_on_parent=False)
    _, under_stays = spawned(stack, stays_token)

    stopped = ws.stop(root["id"])

    assert stopped.status_code == 200 and stopped.json()["stop_reason"] == "stopped_by_user"
    for token_, session_id in (
        (helper_token, helper["session"]["id"]),
        (grandchild_token, grandchild["session"]["id"]),
    ):
        assert wait_stopped(stack, token_, timeout=1)["evidence"]["stop_reason"] == "parent_stopped"
        view = ws.session(session_id)
        assert view["state"] == "stopped" and view["stop_reason"] == "parent_stopped" and view["stop_detail"]
        assert view["health"]["health"] == "stopped" and view["lineage"]["root_session_id"] == root["id"]
    assert me(stack, stays_token).status_code == 200, "it did not ask to stop with its parent"
    assert me(stack, under_stays).status_code == 200, "nor did its parent stop"
    refused(spawn(stack, token), 403, "session_stopped")
    listed = {s["id"]: s["state"] for s in ws.listed()}
    assert listed[stays["session"]["id"]] == "idle" and listed[helper["session"]["id"]] == "stopped"
    assert {s["id"] for s in ws.listed(state="stopped")} == {
        root["id"],
        helper["session"]["id"],
        grandchild["session"]["id"],
    }


def test_a_child_past_its_ttl_is_stopped(stack: Stack) -> None:
    ws = Workspace(stack, "spawn-ttl")
    _, token = ws.root(spawn_budget=BUDGET)
    child, child_token = spawned(stack, token, ttl_seconds=1)
    _, grandchild_token = spawned(stack, child_token)
    _, lasting = spawned(stack, token, ttl_seconds=600)

    diagnostic = wait_stopped(stack, child_token, timeout=10)

    assert diagnostic["evidence"]["stop_reason"] == "ttl_expired"
    view = ws.session(child["session"]["id"])
    assert view["stop_reason"] == "ttl_expired" and "TTL" in view["stop_detail"]
    assert wait_stopped(stack, grandchild_token, timeout=1)["evidence"]["stop_reason"] == "parent_stopped"
    assert me(stack, token).status_code == 200 and me(stack, lasting).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"ttl_seconds": 0},
        {"ttl_seconds": 7 * 24 * 3600 + 1},
        {"permissions": {"tools": "read"}},
        {"permissions": {"workspace_paths": ["src/../etc"]}},
        {"permissions": {"unknown": []}},
        {"spawn_role": ""},
        {"agent_name": "x" * 201},
        {"auto_stop_on_parent": "yes"},
        {"unknown": 1},
    ],
)
def test_a_spawn_body_that_is_not_valid_is_a_400_diagnostic(stack: Stack, body: dict) -> None:
    ws = Workspace(stack, "spawn-bad")
    _, token = ws.root(spawn_budget=BUDGET)
    head = log_head(stack)

    assert_diagnostic(spawn(stack, token, **body), 400, "invalid_request")
    assert log_head(stack) == head


def test_sessions_of_another_workspace_are_not_seen(stack: Stack) -> None:
    mine, theirs = Workspace(stack, "spawn-mine"), Workspace(stack, "spawn-theirs")
    root, token = mine.root(spawn_budget=BUDGET)
    spawned(stack, token)

    assert theirs.listed() == []
    response = httpx.get(f"{sessions_url(stack, theirs.id)}/{root['id']}", headers=theirs.key, timeout=10)
    assert response.status_code == 404
    response = httpx.get(sessions_url(stack, mine.id), headers=theirs.key, timeout=10)
    assert response.status_code == 404


def test_the_coordinator_config_is_the_workspaces(stack: Stack) -> None:
    ws = Workspace(stack, "coordinator")
    _, token = ws.root()
    url = f"{stack.runtime_url}/api/agent/coordinator/config"

    default = httpx.get(url, headers=bearer(token), timeout=10).json()["coordinator"]

    assert set(default) == COORDINATOR_KEYS and default["source"] == "default" and default["workspace_id"] == ws.id
    assert me(stack, token).json()["me"]["coordinator"] == default
    config = {
        "defaultModel": "m-default",
        "coordinator": {"maxChildren": 1, "defaultTtlSeconds": 90, "agentName": "lead", "provider": "openai"},
    }
    patched = httpx.patch(
        f"{stack.gateway_url}/api/v1/workspaces/{ws.id}/orchestration/config", json=config, headers=ws.key, timeout=10
    )
    assert patched.status_code == 200, patched.text
    deadline = time.monotonic() + 5
    while (found := httpx.get(url, headers=bearer(token), timeout=10).json()["coordinator"])["source"] != "workspace":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert found == default | {
        "source": "workspace",
        "max_children": 1,
        "default_ttl_seconds": 90,
        "agent_name": "lead",
        "provider": "openai",
        "model": "m-default",
    }
    assert httpx.get(url, params={"workspace": ws.id}, headers=bearer(token), timeout=10).status_code == 200
    elsewhere = httpx.get(url, params={"workspace": "default"}, headers=bearer(token), timeout=10)
    assert_diagnostic(elsewhere, 404, "workspace_not_found")
    # A session made now takes the workspace's budget for the limits its body leaves out.
    made, _ = ws.root(spawn_budget={"max_depth": 3})
    assert made["lineage"]["spawn_budget"] == {
        "max_children": 1,
        "max_depth": 3,
        "max_active_per_workspace": default["max_active_sessions_per_workspace"],
        "ttl_seconds": 90,
    }
    bad = httpx.patch(
        f"{stack.gateway_url}/api/v1/workspaces/{ws.id}/orchestration/config",
        json={"coordinator": {"maxChildren": -1}},
        headers=ws.key,
        timeout=10,
    )
    assert bad.status_code == 400, bad.text


def test_a_workspace_whose_coordinator_is_off_makes_sessions_that_cannot_spawn(stack: Stack) -> None:
    ws = Workspace(stack, "coordinator-off")
    patched = httpx.patch(
        f"{stack.gateway_url}/api/v1/workspaces/{ws.id}/orchestration/config",
        json={"coordinator": {"enabled": False}},
        headers=ws.key,
        timeout=10,
    )
    assert patched.status_code == 200
    deadline = time.monotonic() + 5
    while (made := ws.root())[0]["lineage"]["spawn_budget"]["max_children"] != 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)

    refused(spawn(stack, made[1]), 403, "max_children_exceeded")
    _, allowed = ws.root(spawn_budget={"max_children": 1, "max_depth": 1})
    spawned(stack, allowed)


def test_the_admin_command_makes_a_session_and_prints_its_token_once(stack: Stack) -> None:
    ws = new_workspace(stack, "spawn-cli")
    env = {**os.environ, "RUNTIME_URL": stack.runtime_url, "ORCHESTRATOR_API_KEY": ws["apiKey"]}
    command = [sys.executable, "-m", "libs.admin.cli"]
    options = ["--name", "nightly", "--agent-name", "coder", "--capability", "codegen", "--tool", "read"]

    made = subprocess.run(
        [*command, "create-session", ws["workspaceId"], *options, "--max-children", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert made.returncode == 0, made.stderr
    fields = dict(line.split(None, 1) for line in made.stdout.splitlines())
    assert set(fields) == {"session", "token"} and "shown this once" in made.stderr
    mine = me(stack, fields["token"]).json()["me"]
    assert mine["session"]["id"] == fields["session"] and mine["self"]["agent_name"] == "coder"
    assert mine["session"]["lineage"]["permission_policy"]["tools"] == ["read"]
    assert mine["session"]["lineage"]["spawn_budget"]["max_children"] == 3
    stopped = subprocess.run(
        [*command, "stop-session", ws["workspaceId"], fields["session"]], env=env, capture_output=True, text=True
    )
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped {fields['session']}"
    assert me(stack, fields["token"]).status_code == 403
    again = subprocess.run(
        [*command, "stop-session", ws["workspaceId"], fields["session"]], env=env, capture_output=True, text=True
    )
    assert again.returncode != 0 and "409" in again.stderr
    without_key = subprocess.run(
        [*command, "create-session", ws["workspaceId"], "--name", "x"],
        env={k: v for k, v in env.items() if k != "ORCHESTRATOR_API_KEY"},
        capture_output=True,
        text=True,
    )
    assert without_key.returncode != 0 and "ORCHESTRATOR_API_KEY" in without_key.stderr
