"""`me` and `context` (spec 002, issue 16): a session sees the lease it holds while it holds it,
its state is `running` then and `idle` after, on every view of it; `context` gives its sections,
each at most `limit` items long and saying when there were more; its peers are its workspace's
other sessions not stopped, never another workspace's; a bad `limit` is a 400 diagnostic. HTTP only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, new_workspace, submit, task_request
from tests.e2e.test_agent_sessions import assert_diagnostic, me, new_session, sessions_url
from tests.e2e.test_leases import EXTERNAL, USAGE, VALIDATED, Team, agent_call, claim, under_lease, when

pytestmark = pytest.mark.e2e

# The keys of spec 002's `context`, and of each of its sections' counts.
CONTEXT_KEYS = {
    "capabilities",
    "coordination_channel",
    "inbox_summary",
    "limits",
    "peer_roster",
    "provenance",
    "self",
    "session",
    "soul",
    "task",
    "workspace",
}
SECTION_KEYS = {"limit", "returned", "truncated"}
PEER_KEYS = {"capabilities", "channel_id", "display_name", "peer_id", "session_id"}


@pytest.fixture
def team(stack: Stack) -> Iterator[Team]:
    created = new_workspace(stack, "context")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as api:
        yield Team(stack, created["workspaceId"], created["apiKey"], api)


def context(stack: Stack, token: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{stack.runtime_url}/api/agent/context", params=params, headers=bearer(token), timeout=10)


def the_context(stack: Stack, token: str, **params: Any) -> dict[str, Any]:
    response = context(stack, token, **params)
    assert response.status_code == 200, response.text
    return dict(response.json()["context"])


def mine(stack: Stack, token: str) -> dict[str, Any]:
    response = me(stack, token)
    assert response.status_code == 200, response.text
    return dict(response.json()["me"])


def viewed(team: Team, session_id: str) -> dict[str, Any]:
    """The session as its workspace's key holder sees it, alone and in the list."""
    url = sessions_url(team.stack, team.workspace)
    one = httpx.get(f"{url}/{session_id}", headers=bearer(team.key), timeout=10)
    assert one.status_code == 200, one.text
    listed = httpx.get(url, headers=bearer(team.key), timeout=10).json()["sessions"]
    (in_list,) = [s for s in listed if s["id"] == session_id]
    assert in_list["state"] == one.json()["state"]
    return dict(one.json())


def listed_ids(team: Team, state: str) -> set[str]:
    url = sessions_url(team.stack, team.workspace)
    response = httpx.get(url, params={"state": state}, headers=bearer(team.key), timeout=10)
    assert response.status_code == 200, response.text
    return {s["id"] for s in response.json()["sessions"]}


def test_me_shows_the_lease_while_it_is_held_and_the_session_runs_then_idles(stack: Stack, team: Team) -> None:
    token = team.session("holder", capabilities=["codegen", "test"])
    session_id = mine(stack, token)["session"]["id"]
    (task_id,) = submit(team.api, task_request("Hold me for a while", config=EXTERNAL))
    channel = f"task_{task_id}"
    assert mine(stack, token)["active_task_leases"] == [] and mine(stack, token)["session"]["state"] == "idle"
    assert viewed(team, session_id)["activity"]["last_activity_kind"] == "created"

    claimed = claim(stack, token, lease_ttl_seconds=60)
    assert claimed is not None
    held = mine(stack, token)

    (lease,) = held["active_task_leases"]
    assert lease == {**claimed["lease"], "coordination_channel": lease["coordination_channel"]}
    assert lease["status"] == "claimed" and lease["session_id"] == session_id and lease["task_id"] == task_id
    assert lease["coordination_channel_id"] == lease["coordination_channel"]["id"] == channel
    assert [c["id"] for c in held["channels"]] == [channel], "its lease's task's channel, before any message"
    assert held["session"]["state"] == "running" and held["session"]["channel"] == channel
    running = viewed(team, session_id)
    assert running["state"] == "running" and running["channel"] == channel
    assert running["health"]["active_prompt"] and not running["health"]["eligible_for_wake"]
    assert running["health"]["ineligibility_reason"] == "session_prompt_active"
    assert running["activity"]["turn_id"] == claimed["run"]["id"] and running["activity"]["turn_source"] == "lease"
    assert running["activity"]["last_activity_kind"] == "lease_claimed"
    assert when(running["activity"]["turn_started_at"]) == pytest.approx(when(claimed["run"]["claimed_at"]), abs=1)
    assert session_id in listed_ids(team, "running") and session_id not in listed_ids(team, "idle")

    beat = under_lease(stack, token, claimed, "heartbeat", lease_ttl_seconds=120)
    assert beat.status_code == 200, beat.text
    (lease,) = mine(stack, token)["active_task_leases"]
    assert lease["heartbeat_at"] == beat.json()["lease"]["heartbeat_at"] is not None
    assert lease["lease_until"] == beat.json()["lease"]["lease_until"]
    beating = viewed(team, session_id)
    assert beating["activity"]["last_activity_kind"] == "lease_heartbeat"
    assert beating["activity"]["last_progress_at"] == beating["health"]["last_presence_at"] == lease["heartbeat_at"]
    status = {"body": "on it", "metadata": {"message_kind": "status"}}
    said = agent_call(stack, token, f"channels/{channel}/send", status)
    assert said.status_code == 201, said.text

    result = {"files": {"src/register.py": VALIDATED}, "summary": "validated", "usage": USAGE}
    assert under_lease(stack, token, claimed, "complete", result=result).status_code == 200
    after = mine(stack, token)

    assert after["active_task_leases"] == [] and after["session"]["state"] == "idle"
    assert after["session"]["channel"] is None
    assert [c["id"] for c in after["channels"]] == [channel], "a channel it posted on"
    assert after["channels"][0]["last_activity_at"] is not None
    idle = viewed(team, session_id)
    assert idle["state"] == "idle" and idle["health"]["eligible_for_wake"] and idle["activity"]["turn_id"] is None
    assert idle["activity"]["last_activity_kind"] == "lease_completed"
    assert session_id in listed_ids(team, "idle") and session_id not in listed_ids(team, "running")


def test_context_shows_the_run_held_its_channel_the_inbox_and_the_peers(stack: Stack, team: Team) -> None:
    token = team.session("worker", capabilities=["codegen", "test"], agent_name="coder", model="m1")
    watcher = team.session("watcher", capabilities=["review"])
    (task_id,) = submit(team.api, task_request("Give me context", config=EXTERNAL))
    channel = f"task_{task_id}"
    before = the_context(stack, token)
    assert set(before) == CONTEXT_KEYS
    assert before["task"] == {"available": False, "bundle": None, "lease": None, "task": None}
    assert before["coordination_channel"] == {"available": False, "channel": None}
    assert before["self"]["agent_name"] == "coder" and before["session"]["state"] == "idle"
    assert before["soul"]["present"] is False and before["soul"]["validation_status"] == "missing"
    assert before["workspace"]["id"] == team.workspace and before["limits"]["context_section_limit"] == 50
    assert before["provenance"]["generated_at"] and before["provenance"]["source"]

    claimed = claim(stack, token, lease_ttl_seconds=60)
    assert claimed is not None
    asked = agent_call(
        stack, watcher, f"channels/{channel}/send", {"body": "need a hand?", "metadata": {"message_kind": "question"}}
    )
    assert asked.status_code == 201, asked.text
    holding = the_context(stack, token)

    assert holding["session"]["state"] == "running"
    task = holding["task"]
    assert task["available"] and task["bundle"] is None
    assert task["lease"]["run_id"] == claimed["run"]["id"] and task["lease"]["status"] == "claimed"
    assert task["task"]["id"] == task_id and task["task"]["workspace_id"] == team.workspace
    coordination = holding["coordination_channel"]
    assert coordination["available"] and coordination["channel"]["id"] == channel
    sent_at = when(asked.json()["message"]["timestamp"])
    assert when(coordination["channel"]["last_activity_at"]) == pytest.approx(sent_at, abs=0.002)
    inbox = holding["inbox_summary"]
    assert inbox["unread_count"] == 1 and inbox["section"] == {"limit": 50, "returned": 1, "truncated": False}
    assert inbox["items"][0]["message_id"] == asked.json()["message"]["message_id"]
    assert inbox["items"][0]["preview"] == "need a hand?" and inbox["items"][0]["kind"] == "question"
    (peer,) = holding["peer_roster"]["peers"]
    assert set(peer) == PEER_KEYS and peer["display_name"] == "watcher" and peer["channel_id"] is None
    (holder,) = the_context(stack, watcher)["peer_roster"]["peers"]
    assert holder["session_id"] == holder["peer_id"] == claimed["lease"]["session_id"]
    assert holder["capabilities"] == ["codegen", "test"] and holder["channel_id"] == channel

    # The answers are the shapes the runtime's OpenAPI document gives them.
    document = httpx.get(f"{stack.runtime_url}/schema/openapi.json", timeout=10).json()
    for path, answer in (("/api/agent/context", context(stack, token)), ("/api/agent/me", me(stack, token))):
        schema = document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator({**schema, "components": document["components"]})
        assert not [e.message for e in validator.iter_errors(answer.json())], path
    assert under_lease(stack, token, claimed, "release", reason="done looking").status_code == 200
    assert the_context(stack, token)["task"]["available"] is False


def test_each_section_holds_at_most_limit_items_and_says_when_there_were_more(stack: Stack, team: Team) -> None:
    token = team.session("reader", capabilities=["codegen", "test", "review"])
    sender = team.session("sender")
    for name in ("first", "second"):
        team.session(name)
    (task_id,) = submit(team.api, task_request("Talk about me", config=EXTERNAL))
    for n in range(3):
        sent = agent_call(
            stack, sender, f"channels/task_{task_id}/send", {"body": f"note {n}", "metadata": {"message_kind": "note"}}
        )
        assert sent.status_code == 201, sent.text

    small = the_context(stack, token, limit=2)

    assert small["capabilities"]["section"] == {"limit": 2, "returned": 2, "truncated": True}
    assert [c["id"] for c in small["capabilities"]["capabilities"]] == ["codegen", "test"]
    assert small["peer_roster"]["section"] == {"limit": 2, "returned": 2, "truncated": True}
    assert len(small["peer_roster"]["peers"]) == 2
    assert small["inbox_summary"]["section"] == {"limit": 2, "returned": 2, "truncated": True}
    assert small["inbox_summary"]["unread_count"] == 3
    assert [i["preview"] for i in small["inbox_summary"]["items"]] == ["note 2", "note 1"], "newest first"
    whole = the_context(stack, token)
    assert whole["capabilities"]["section"] == {"limit": 50, "returned": 3, "truncated": False}
    assert whole["peer_roster"]["section"] == {"limit": 50, "returned": 3, "truncated": False}
    assert whole["inbox_summary"]["section"] == {"limit": 50, "returned": 3, "truncated": False}
    exact = the_context(stack, token, limit=3)
    assert {k: exact[k]["section"]["truncated"] for k in ("capabilities", "peer_roster", "inbox_summary")} == {
        "capabilities": False,
        "peer_roster": False,
        "inbox_summary": False,
    }


def test_peers_are_the_workspaces_other_sessions_not_stopped_never_another_workspaces(stack: Stack, team: Team) -> None:
    token = team.session("me")
    peer = mine(stack, team.session("peer"))["session"]["id"]
    gone = mine(stack, team.session("gone"))["session"]["id"]
    stopped = httpx.delete(f"{sessions_url(stack, team.workspace)}/{gone}", headers=bearer(team.key), timeout=10)
    assert stopped.status_code == 200, stopped.text
    other = new_workspace(stack, "context-other")
    made = new_session(stack, other["workspaceId"], bearer(other["apiKey"]), name="theirs")
    assert made.status_code == 201, made.text
    theirs, their_token = made.json()["session"]["id"], made.json()["token"]

    ours = the_context(stack, token)["peer_roster"]

    assert [p["session_id"] for p in ours["peers"]] == [peer]
    assert ours["section"] == {"limit": 50, "returned": 1, "truncated": False}
    assert theirs not in str(ours)
    across = the_context(stack, their_token)["peer_roster"]
    assert across == {"peers": [], "section": {"limit": 50, "returned": 0, "truncated": False}}


@pytest.mark.parametrize("limit", ["0", "51", "-3", "many", "2.5", ""])
def test_a_limit_out_of_its_bounds_is_a_400_diagnostic_naming_it(stack: Stack, limit: str) -> None:
    made = new_session(stack, "default", stack.auth)
    assert made.status_code == 201, made.text

    diagnostic = assert_diagnostic(context(stack, made.json()["token"], limit=limit), 400, "invalid_request")

    assert diagnostic["category"] == "validation" and diagnostic["message"].startswith("limit")
    assert diagnostic["evidence"]["parameters"]["limit"]["in"] == "query"
    assert diagnostic["suggested_command"] == "GET /api/agent/context?limit=50"
