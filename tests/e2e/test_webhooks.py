"""GitHub's webhook deliveries through HTTP on the real stack, signed by the local GitHub server:
a command comment is accepted once and recorded as a `webhook_delivery.received` carrying only
what the intake needs; a redelivery (after a restart of the gateway too) is a duplicate; a bad
signature is a 401; what is not a command, or not on a linked installation's repository, is
ignored with the reason; and none of those change anything."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.github_deliveries import comment, commenter, deliver, linked_repository
from tests.e2e.helpers import bearer, debug_dump, new_workspace

pytestmark = pytest.mark.e2e


def deliveries(stack: Stack, workspace: dict[str, str]) -> list[dict]:
    events = debug_dump(stack, workspace["workspaceId"], bearer(workspace["apiKey"]))["events"]
    return [e for e in events if e["type"].startswith("webhook_delivery")]


def test_a_command_comment_is_accepted_once_with_only_what_the_intake_needs(stack: Stack) -> None:
    workspace = new_workspace(stack, "hook-accept")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)

    sent = comment(stack, where, login, "/agent codegen add input validation")

    assert (sent["status"], json.loads(sent["response"])) == (
        202,
        {"status": "accepted", "deliveryId": sent["delivery"]},
    )
    (event,) = deliveries(stack, workspace)
    assert event["type"] == "webhook_delivery.received"
    assert event["payload"] == {
        "delivery_id": sent["delivery"],
        "installation_id": where.installation,
        "owner": where.owner,
        "repo": where.repo,
        "issue_number": where.issue,
        "issue_title": "Validate input",
        "issue_body": "The signup form takes any email.",
        "comment_id": event["payload"]["comment_id"],
        "commenter": login,
        "agent_type": "codegen",
        "description": "add input validation",
    }


def test_a_redelivery_is_a_duplicate_even_after_the_gateway_restarts(stack: Stack) -> None:
    workspace = new_workspace(stack, "hook-again")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)
    first = comment(stack, where, login, "/agent test cover the signup form")

    again = comment(stack, where, login, "/agent test cover the signup form", delivery=first["delivery"])
    stack.services["gateway"].stop()
    stack.restart_service("gateway")
    after_restart = comment(stack, where, login, "/agent test cover the signup form", delivery=first["delivery"])

    assert first["status"] == 202
    for redelivered in (again, after_restart):
        assert (redelivered["status"], json.loads(redelivered["response"])) == (200, {"status": "duplicate"})
    assert len(deliveries(stack, workspace)) == 1


def test_a_bad_or_missing_signature_is_refused_and_changes_nothing(stack: Stack) -> None:
    workspace = new_workspace(stack, "hook-signature")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)

    wrong_secret = comment(stack, where, login, "/agent codegen add it", secret="not-the-secret")
    wrong_signature = comment(stack, where, login, "/agent codegen add it", signature="sha256=" + "0" * 64)
    unsigned = httpx.post(
        f"{stack.gateway_url}/api/webhooks/github",
        content=b"{}",
        headers={"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": str(uuid.uuid4())},
        timeout=10,
    )

    for refused in (wrong_secret, wrong_signature):
        assert refused["status"] == 401
        assert json.loads(refused["response"])["error"] == "unauthorized"
    assert unsigned.status_code == 401
    assert set(unsigned.json()) == {"error", "message"}
    assert deliveries(stack, workspace) == []


def test_a_signed_body_that_is_not_an_issue_comment_is_a_bad_request(stack: Stack) -> None:
    broken = deliver(stack, payload={"action": "created", "issue": {"number": "seven"}})

    assert broken["status"] == 400
    assert json.loads(broken["response"])["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("asked", "reason"),
    [
        ({"event": "push", "payload": {"ref": "refs/heads/main"}}, "the 'push' event is not acted on"),
        ({"action": "edited"}, "the issue_comment action 'edited' is not acted on"),
        ({"body": "thanks, looks good"}, "the comment is not a command"),
        ({"body": "/agent painter paint it blue"}, "unknown agent type 'painter'"),
        ({"body": "/agent codegen"}, "a command is '/agent <agentType> <description>'"),
    ],
)
def test_what_is_not_a_command_is_ignored_with_the_reason(stack: Stack, asked: dict, reason: str) -> None:
    workspace = new_workspace(stack, "hook-ignored")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)

    sent = comment(stack, where, login, **{"body": "/agent codegen add it", **asked})

    assert sent["status"] == 202
    answer = json.loads(sent["response"])
    assert answer["status"] == "ignored"
    assert reason in answer["reason"]
    assert deliveries(stack, workspace) == []


def test_a_comment_on_a_repository_of_an_unlinked_installation_is_ignored(stack: Stack) -> None:
    where = linked_repository(stack, None)
    login = commenter(stack, where)

    sent = comment(stack, where, login, "/agent codegen add input validation")

    assert sent["status"] == 202
    assert json.loads(sent["response"]) == {
        "status": "ignored",
        "reason": f"installation {where.installation} is not linked to a workspace",
    }


def test_the_workspaces_prefix_and_allowed_repositories_decide(stack: Stack) -> None:
    workspace = new_workspace(stack, "hook-settings")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)
    settings = {"commandPrefix": "/bot", "allowedRepositories": [f"{where.owner}/other"]}
    put = httpx.put(f"{stack.gateway_url}/api/config", json=settings, headers=bearer(workspace["apiKey"]), timeout=10)
    assert put.status_code == 200, put.text

    old_prefix = comment(stack, where, login, "/agent codegen add it")
    not_allowed = comment(stack, where, login, "/bot codegen add it")

    assert "does not start with '/bot'" in json.loads(old_prefix["response"])["reason"]
    assert json.loads(not_allowed["response"])["reason"] == (
        f"{where.owner}/{where.repo} is not among the workspace's allowedRepositories"
    )
    assert deliveries(stack, workspace) == []


def test_a_comment_longer_than_github_allows_is_a_bad_request(stack: Stack) -> None:
    workspace = new_workspace(stack, "hook-long")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)

    sent = comment(stack, where, login, "/agent codegen " + "x" * 70_000)

    assert sent["status"] == 400
    assert deliveries(stack, workspace) == []
