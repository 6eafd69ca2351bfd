"""The Workspace aggregate: keys shown once and stored as hashes, revocation, config events."""

from __future__ import annotations

import pytest

from libs.domain.base import EventTypes, event_payload
from libs.domain.errors import IllegalTransition
from libs.domain.workspace import Workspace, key_hash, split_key


def test_an_issued_key_is_recorded_only_as_the_hash_of_its_secret() -> None:
    workspace = Workspace.create("team-a", "Team A")
    key = workspace.issue_key("ci")

    key_id, secret = split_key(key) or ("", "")
    issued = workspace.collect_events()[-1]
    assert EventTypes.name(type(issued)) == "workspace.key_issued"
    assert event_payload(issued) == {"key_id": key_id, "key_hash": key_hash(secret), "label": "ci"}
    assert secret not in repr(event_payload(issued))
    assert workspace.keys == {key_id: "active"}


@pytest.mark.parametrize(
    "key",
    ["", "ak_", "ak_0123456789abcdef_short", "sk_0123456789abcdef_" + "x" * 40, "ak_XYZ3456789abcdef_" + "x" * 40],
)
def test_malformed_keys_do_not_split(key: str) -> None:
    assert split_key(key) is None


def test_revoking_twice_records_once_and_an_unknown_key_is_refused() -> None:
    workspace = Workspace.create("team-a", "Team A")
    key_id = workspace.issue_key(None).split("_")[1]
    workspace.collect_events()

    workspace.revoke_key(key_id)
    workspace.revoke_key(key_id)

    assert [EventTypes.name(type(e)) for e in workspace.collect_events()] == ["workspace.key_revoked"]
    with pytest.raises(IllegalTransition):
        workspace.revoke_key("0000000000000000")


def test_a_config_update_that_changes_nothing_records_nothing() -> None:
    workspace = Workspace.create("team-a", "Team A")
    workspace.update_config({"budgetUsd": 5}, {"budgetUsd": 5})
    workspace.collect_events()

    workspace.update_config({"budgetUsd": 5}, {"budgetUsd": 5})

    assert workspace.collect_events() == []
    assert workspace.config == {"budgetUsd": 5}


def test_a_secret_is_recorded_as_given_sealed_and_cleared_once() -> None:
    workspace = Workspace.create("team-a", "Team A")
    workspace.collect_events()

    workspace.set_secret("github_token", "v1.sealed-one", "abcd")
    workspace.set_secret("github_token", "v1.sealed-two", "wxyz")
    workspace.clear_secret("github_token")
    workspace.clear_secret("github_token")
    workspace.clear_secret("openai_api_key")

    events = workspace.collect_events()
    assert [EventTypes.name(type(e)) for e in events] == [
        "workspace.secret_set",
        "workspace.secret_set",
        "workspace.secret_cleared",
    ]
    assert event_payload(events[1]) == {"name": "github_token", "sealed": "v1.sealed-two", "last4": "wxyz"}
    assert workspace.secrets == {}


def test_the_last_secret_set_under_a_name_is_the_one_the_workspace_holds() -> None:
    workspace = Workspace.create("team-a", "Team A")

    workspace.set_secret("anthropic_api_key", "v1.old", "0000")
    workspace.set_secret("anthropic_api_key", "v1.new", "1111")
    workspace.set_secret("openai_api_key", "v1.other", "2222")

    assert {name: (s.sealed, s.last4) for name, s in workspace.secrets.items()} == {
        "anthropic_api_key": ("v1.new", "1111"),
        "openai_api_key": ("v1.other", "2222"),
    }
