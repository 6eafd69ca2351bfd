"""Spawning's rules without a server: a child's permissions within its parent's, what a child
inherits, and a workspace's coordinator settings as the default spawn budget."""

from __future__ import annotations

import pytest

from contracts.payloads.agent_session import PermissionPolicy, SpawnBudget
from libs.domain.agent_session import SPAWNED, AgentSession, split_token, wider_permissions
from libs.domain.errors import IllegalTransition
from services.runtime.coordinator import DEFAULTS, coordinator_from

ALLOWED = PermissionPolicy(tools=["read", "write"], mcp_servers=["github"], workspace_paths=["src", "docs/api"])


@pytest.mark.parametrize(
    "asked",
    [
        PermissionPolicy(),
        ALLOWED,
        PermissionPolicy(tools=["read"]),
        PermissionPolicy(workspace_paths=["src/app/x.py", "./src", "src/", "/docs/api/v1"]),
    ],
)
def test_a_subset_is_within(asked: PermissionPolicy) -> None:
    assert wider_permissions(ALLOWED, asked) == {}


def test_what_is_wider_is_named_by_kind() -> None:
    asked = PermissionPolicy(
        tools=["read", "shell"], skills=["x"], workspace_paths=["srcs", "docs", "docs/api", ".", "lib/src"]
    )

    assert wider_permissions(ALLOWED, asked) == {
        "tools": ["shell"],
        "skills": ["x"],
        "workspace_paths": ["srcs", "docs", ".", "lib/src"],
    }


def test_the_whole_workspace_holds_every_path() -> None:
    assert wider_permissions(PermissionPolicy(workspace_paths=["."]), PermissionPolicy(workspace_paths=["a/b"])) == {}
    assert wider_permissions(PermissionPolicy(workspace_paths=["/"]), PermissionPolicy(workspace_paths=["a"])) == {}


def test_a_child_inherits_and_its_parent_records_it() -> None:
    budget = SpawnBudget(max_children=2, max_depth=3, max_active_per_workspace=9, ttl_seconds=60)
    parent, _ = AgentSession.create("ws", "lead", "coder", "m", "anthropic", ["codegen"], ALLOWED, budget)

    child, token = parent.spawn("coder", "reviewer", PermissionPolicy(tools=["read"]), False, 123)
    grandchild, _ = child.spawn("coder", None, PermissionPolicy(), True, None)

    d = child.details
    assert split_token(token) is not None
    session_id, secret = split_token(token) or (None, "")
    assert session_id == child.id and child.holds(secret) and not parent.holds(secret)
    assert d.token_hash != parent.details.token_hash
    assert (d.type, d.name, d.spawn_role, d.spawn_depth) == (SPAWNED, "reviewer", "reviewer", 1)
    assert (d.parent_session_id, d.root_session_id) == (str(parent.id), str(parent.id))
    assert (d.model, d.provider, d.capabilities, d.spawn_budget) == ("m", "anthropic", ["codegen"], budget)
    assert d.permissions == PermissionPolicy(tools=["read"]) and not d.auto_stop_on_parent and d.ttl_expires_at == 123
    assert grandchild.details.spawn_depth == 2 and grandchild.details.root_session_id == str(parent.id)
    assert grandchild.details.name == "coder", "without a role, its agent's name"
    assert parent.children == [str(child.id)] and child.children == [str(grandchild.id)]
    assert parent.last_activity == "child_spawned"


def test_a_stopped_session_spawns_nothing() -> None:
    parent, _ = AgentSession.create("ws", "lead", "coder", "", "", [])
    parent.stop("stopped_by_user")

    with pytest.raises(IllegalTransition):
        parent.spawn("coder", None, PermissionPolicy(), True, None)
    assert parent.children == []


def test_the_coordinator_settings_default_to_the_products() -> None:
    found = coordinator_from("ws", {})

    assert found.view.source == "default" and found.view.workspace_id == "ws"
    assert found.default_budget() == SpawnBudget(
        max_children=DEFAULTS.max_children or 0,
        max_depth=DEFAULTS.max_spawn_depth or 0,
        max_active_per_workspace=DEFAULTS.max_active_sessions_per_workspace or 0,
        ttl_seconds=DEFAULTS.default_ttl_seconds or 0,
    )


def test_a_workspaces_coordinator_settings_replace_the_defaults_they_name() -> None:
    config = {"defaultModel": "m-1", "coordinator": {"maxChildren": 7, "maxSpawnDepth": 1, "provider": "openai"}}

    found = coordinator_from("ws", config)

    assert found.view.source == "workspace" and found.view.max_children == 7
    assert (found.view.model, found.view.provider) == ("m-1", "openai")
    assert found.default_budget().max_depth == 1
    assert found.view.default_ttl_seconds == DEFAULTS.default_ttl_seconds


def test_a_coordinator_that_is_off_gives_sessions_no_spawning() -> None:
    budget = coordinator_from("ws", {"coordinator": {"enabled": False}}).default_budget()

    assert budget.max_children == 0 and budget.max_depth == 0


def test_a_config_the_gateway_would_not_take_now_is_ignored() -> None:
    assert coordinator_from("ws", {"coordinator": {"maxChildren": "many"}}).view.source == "default"
