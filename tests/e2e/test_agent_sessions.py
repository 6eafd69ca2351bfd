"""Agent sessions (spec 002, issue 16): a workspace's key holder makes a session and gets its
token once; the session then acts on `/api/agent/*` with that token, in its workspace only, and
every refusal there is the diagnostic envelope. HTTP only."""

from __future__ import annotations

import uuid

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, log_head

pytestmark = pytest.mark.e2e

DIAGNOSTIC_KEYS = {
    "category",
    "code",
    "data_freshness",
    "doc_url",
    "evidence",
    "id",
    "message",
    "severity",
    "suggested_command",
    "title",
}


def sessions_url(stack: Stack, workspace: str) -> str:
    return f"{stack.runtime_url}/api/v1/workspaces/{workspace}/agent-sessions"


def new_session(stack: Stack, workspace: str, key: dict[str, str], **body: object) -> httpx.Response:
    return httpx.post(sessions_url(stack, workspace), json={"name": "worker", **body}, headers=key, timeout=10)


def me(stack: Stack, token: str) -> httpx.Response:
    return httpx.get(f"{stack.runtime_url}/api/agent/me", headers=bearer(token), timeout=10)


def assert_diagnostic(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"diagnostic", "error"}
    assert set(body["diagnostic"]) == DIAGNOSTIC_KEYS
    assert body["diagnostic"]["code"] == code
    assert body["error"] == body["diagnostic"]["message"]
    return body["diagnostic"]


def test_a_key_holder_makes_a_session_whose_token_acts_as_it(stack: Stack) -> None:
    made = new_session(
        stack,
        "default",
        stack.auth,
        name="nightly",
        agent_name="coder",
        model="m1",
        provider="anthropic",
        capabilities=["codegen", "codegen", "test"],
    )

    assert made.status_code == 201, made.text
    session, token = made.json()["session"], made.json()["token"]
    assert session["name"] == "nightly" and session["state"] == "idle" and session["type"] == "user"
    assert session["lineage"]["root_session_id"] == session["id"]
    assert session["lineage"]["parent_session_id"] is None and session["lineage"]["spawn_depth"] == 0
    view = me(stack, token)
    assert view.status_code == 200, view.text
    mine = view.json()["me"]
    assert mine["session"] == session, "me shows the session as it was made"
    assert mine["self"] == {"agent_name": "coder", "model": "m1", "provider": "anthropic", "session_id": session["id"]}
    assert [c["id"] for c in mine["capabilities"]] == ["codegen", "test"]
    assert mine["workspace"]["id"] == "default"
    assert mine["active_task_leases"] == []


def test_the_token_is_shown_once_and_never_on_the_feed(stack: Stack) -> None:
    made = new_session(stack, "default", stack.auth)
    token = made.json()["token"]
    # `ags_<session id hex>_<secret>`: the secret may hold `_` itself, so split at the first two.
    secret = token.split("_", 2)[2]

    dump = httpx.get(
        f"{stack.stream_url}/api/v1/workspaces/default/orchestration/debug-dump", headers=stack.auth, timeout=10
    )
    assert dump.status_code == 200
    created = [e for e in dump.json()["events"] if e["type"] == "agent_session.created"]
    assert created and all("token_hash" not in e["payload"] for e in created)
    assert secret not in dump.text and token not in dump.text


def test_a_session_acts_in_its_own_workspace_only(stack: Stack) -> None:
    other = stack.create_workspace(f"team-{uuid.uuid4().hex[:8]}", "another team")
    assert other is not None
    theirs = bearer(other["apiKey"])

    refused = new_session(stack, "default", theirs)
    assert refused.status_code == 404, "another workspace's key cannot make a session here"
    assert refused.json()["error"] == "Not found", "the workspace API keeps its own error format"
    made = new_session(stack, other["workspaceId"], theirs)
    assert made.status_code == 201
    assert me(stack, made.json()["token"]).json()["me"]["workspace"]["id"] == other["workspaceId"]


def test_every_refusal_on_the_agent_api_is_a_diagnostic(stack: Stack) -> None:
    made = new_session(stack, "default", stack.auth).json()
    session_id = made["session"]["id"]
    forged = f"ags_{uuid.UUID(session_id).hex}_{'x' * 43}"

    missing = assert_diagnostic(
        httpx.get(f"{stack.runtime_url}/api/agent/me", timeout=10), 401, "session_token_missing"
    )
    assert missing["category"] == "auth" and missing["suggested_command"]
    assert_diagnostic(me(stack, forged), 401, "session_token_invalid")
    assert_diagnostic(me(stack, stack.api_key), 401, "session_token_invalid"), "a workspace key is not a session"
    assert_diagnostic(me(stack, "ags_nothex_" + "x" * 43), 401, "session_token_invalid")
    unknown = httpx.get(f"{stack.runtime_url}/api/agent/nothing-here", headers=bearer(made["token"]), timeout=10)
    assert_diagnostic(unknown, 404, "Not found")


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {"name": "x" * 201},
        {"name": "ok", "capabilities": "codegen"},
        {"name": "ok", "unknown": 1},
        {"name": "tab\there"},
    ],
)
def test_a_session_body_that_is_not_valid_is_a_400_and_makes_nothing(stack: Stack, body: dict) -> None:
    head = log_head(stack)
    response = httpx.post(sessions_url(stack, "default"), json=body, headers=stack.auth, timeout=10)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert log_head(stack) == head, "nothing was recorded"


def test_a_stopped_session_is_refused_from_its_stop_on(stack: Stack) -> None:
    made = new_session(stack, "default", stack.auth).json()
    session_id, token = made["session"]["id"], made["token"]
    assert me(stack, token).status_code == 200

    stopped = httpx.delete(f"{sessions_url(stack, 'default')}/{session_id}", headers=stack.auth, timeout=10)

    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["state"] == "stopped" and stopped.json()["stop_reason"] == "stopped_by_user"
    refused = assert_diagnostic(me(stack, token), 403, "session_stopped")
    assert refused["evidence"] == {"session_id": session_id, "stop_reason": "stopped_by_user"}
    assert refused["suggested_command"]
    again = httpx.delete(f"{sessions_url(stack, 'default')}/{session_id}", headers=stack.auth, timeout=10)
    assert again.status_code == 409 and again.json()["error"] == "session_stopped"


def test_a_session_is_stopped_only_through_its_own_workspace(stack: Stack) -> None:
    made = new_session(stack, "default", stack.auth).json()
    other = stack.create_workspace(f"team-{uuid.uuid4().hex[:8]}", "another team")
    assert other is not None
    theirs = bearer(other["apiKey"])
    session_id = made["session"]["id"]

    for workspace, key in (("default", theirs), (other["workspaceId"], theirs)):
        response = httpx.delete(f"{sessions_url(stack, workspace)}/{session_id}", headers=key, timeout=10)
        assert response.status_code == 404, (workspace, response.text)
    for wrong in ("not-a-uuid", session_id.upper(), str(uuid.uuid4())):
        response = httpx.delete(f"{sessions_url(stack, 'default')}/{wrong}", headers=stack.auth, timeout=10)
        assert response.status_code == 404, (wrong, response.text)
    assert me(stack, made["token"]).status_code == 200, "still working"
