"""A workspace's settings (`/api/config`): what is refused and why, the default task config checked
key for key as spec 000 checks a task's, and the change a PUT records as a merge patch."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.tasks import AgentConfig
from contracts.workspace_settings import DefaultAgentConfig, WorkspaceSettings
from contracts.workspaces import OrchestrationConfig
from services.gateway.workspace_settings import merge_diff
from services.gateway.workspaces import merge_patch


def test_nothing_given_reads_as_the_defaults() -> None:
    assert msgspec.to_builtins(WorkspaceSettings()) == {
        "commandPrefix": "/agent",
        "defaultAgentConfig": {},
        "allowedRepositories": [],
    }


def test_the_default_agent_config_reads_back_as_given_even_where_it_equals_a_default() -> None:
    given = {"model": "claude-sonnet-4-20250514", "maxTokens": 8000, "temperature": 0}

    settings = msgspec.convert({"defaultAgentConfig": given}, WorkspaceSettings, strict=True)

    assert msgspec.to_builtins(settings)["defaultAgentConfig"] == given


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"commandPrefix": ""}, "$.commandPrefix"),
        ({"commandPrefix": "/agent please"}, "$.commandPrefix"),
        ({"commandPrefix": 7}, "$.commandPrefix"),
        ({"defaultAgentConfig": {"maxTokens": 0}}, "$.defaultAgentConfig.maxTokens"),
        ({"defaultAgentConfig": {"maxTokens": "100"}}, "$.defaultAgentConfig.maxTokens"),
        ({"defaultAgentConfig": {"temperature": 2.5}}, "$.defaultAgentConfig.temperature"),
        ({"defaultAgentConfig": {"provider": "mistral"}}, "$.defaultAgentConfig.provider"),
        ({"defaultAgentConfig": {"modle": "x"}}, "unknown field `modle`"),
        ({"defaultAgentConfig": []}, "$.defaultAgentConfig"),
        ({"allowedRepositories": ["acme"]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": ["acme/api", "acme/../x"]}, "$.allowedRepositories[1]"),
        ({"allowedRepositories": ["acme/api/x"]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": ["-acme/api"]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": ["*/api"]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": ["acme/" + "r" * 101]}, "$.allowedRepositories[0]"),
        ({"allowedRepositories": "acme/api"}, "$.allowedRepositories"),
        ({"allowedRepos": []}, "unknown field `allowedRepos`"),
    ],
)
def test_a_setting_that_is_not_valid_is_refused_naming_it(body: dict[str, Any], where: str) -> None:
    with pytest.raises(msgspec.ValidationError) as refused:
        msgspec.convert(body, WorkspaceSettings, strict=True)

    assert where in str(refused.value)


def test_repository_patterns_take_a_name_or_every_repository_of_an_owner() -> None:
    allowed = ["acme/api", "acme/*", "Acme-Corp/my.repo_2", "a/" + "r" * 100, "acme/.github"]

    assert msgspec.convert({"allowedRepositories": allowed}, WorkspaceSettings).allowed_repositories == allowed


def test_the_default_agent_config_has_spec_000s_keys_checked_as_a_tasks_are() -> None:
    task = msgspec.json.schema(AgentConfig)["$defs"]["AgentConfig"]["properties"]
    default = msgspec.json.schema(DefaultAgentConfig)["$defs"]["DefaultAgentConfig"]["properties"]

    # The same keys and rules; only the task's own defaults are not the workspace's to claim.
    assert default == {key: {k: v for k, v in rule.items() if k != "default"} for key, rule in task.items()}


def test_spec_001s_config_checks_the_settings_as_spec_003s_route_does() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"\$\.commandPrefix"):
        msgspec.convert({"commandPrefix": "two words"}, OrchestrationConfig, strict=True)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.defaultAgentConfig\.maxRetries"):
        msgspec.convert({"defaultAgentConfig": {"maxRetries": 11}}, OrchestrationConfig, strict=True)

    msgspec.convert(
        {"commandPrefix": "/bot", "defaultAgentConfig": {"model": "m"}, "allowedRepositories": ["a/b"], "team": 1},
        OrchestrationConfig,
        strict=True,
    )


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({}, {"commandPrefix": "/bot"}),
        ({"commandPrefix": "/bot", "budgetUsd": 5}, {"budgetUsd": 5}),
        ({"defaultAgentConfig": {"model": "a", "maxTokens": 9}}, {"defaultAgentConfig": {"model": "b"}}),
        ({"defaultAgentConfig": {"model": "a"}}, {"defaultAgentConfig": {}}),
        ({"allowedRepositories": ["a/b", "a/c"]}, {"allowedRepositories": ["a/c"]}),
        ({"budgetUsd": 5, "team": {"a": 1}}, {"budgetUsd": 5, "team": {"a": 1}}),
    ],
)
def test_the_recorded_change_is_the_merge_patch_from_the_config_before_to_the_one_after(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    patch = merge_diff(before, after)

    assert merge_patch(before, patch) == after
    assert set(patch) == {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
