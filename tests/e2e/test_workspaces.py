"""Workspaces (spec 001 and issue 4): API keys, isolation between workspaces, the admin API and
the orchestration config. HTTP, SSE and WebSocket only."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, orchestration, sse_events, submit, task_request, wait_for

pytestmark = pytest.mark.e2e


def config_url(stack: Stack, workspace: str) -> str:
    return f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration/config"


def admin(stack: Stack) -> dict[str, str]:
    return bearer(stack.admin_token)


@pytest.fixture
def other(stack: Stack) -> dict[str, str]:
    """A second workspace of its own, with its first key."""
    created = stack.create_workspace(f"team-{uuid.uuid4().hex[:8]}", "another team")
    assert created is not None
    return created


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


def test_every_endpoint_but_health_needs_a_valid_key(stack: Stack) -> None:
    gateway = [("POST", "/tasks"), ("GET", f"/tasks/{uuid.uuid4()}"), ("GET", "/costs")]
    stream = ["events", "events/connections", "debug-dump"]
    urls = [(m, stack.gateway_url + p) for m, p in gateway] + [
        ("GET", orchestration(stack, "default", w)) for w in stream
    ]
    urls.append(("GET", config_url(stack, "default")))
    for headers, why in (({}, "no key"), (bearer("ak_0123456789abcdef_" + "x" * 43), "a key nobody issued")):
        for method, url in urls:
            response = httpx.request(method, url, headers=headers, json={"tasks": []}, timeout=10)
            assert response.status_code == 401, (why, url, response.text)
            assert response.json()["error"] == "unauthorized"
    assert httpx.get(f"{stack.gateway_url}/health", timeout=10).status_code == 200


def test_a_workspace_sees_nothing_of_another(stack: Stack, api: httpx.Client, other: dict[str, str]) -> None:
    (theirs,) = submit(api, task_request(f"Default's task {uuid.uuid4().hex[:8]}"))
    wait_for(api, theirs, in_review_and_charged)
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(other["apiKey"])) as mine:
        (own,) = submit(mine, task_request("Another team's task"))
        wait_for(mine, own, in_review_and_charged)

        assert mine.get(f"/tasks/{theirs}").status_code == 404
        decision = {"taskId": theirs, "decision": "approve"}
        assert mine.post(f"/tasks/{theirs}/review", json=decision).status_code == 404
        costs = mine.get("/costs?since=0").json()
        assert [t["taskId"] for t in costs["tasks"]] == [own]
        assert api.get(f"/tasks/{own}").status_code == 404

    key = bearer(other["apiKey"])
    for what in ("events", "events/connections", "debug-dump"):
        response = httpx.get(orchestration(stack, "default", what), headers=key, timeout=10)
        assert response.status_code == 404, what
    assert httpx.get(config_url(stack, "default"), headers=key, timeout=10).status_code == 404
    dump = httpx.get(orchestration(stack, other["workspaceId"], "debug-dump"), headers=key, timeout=10).json()
    assert [t["id"] for t in dump["tasks"]] == [own]
    assert all(theirs not in json.dumps(e) for e in dump["events"])

    # Its own feed, from the very beginning, carries only its own events.
    seen = []
    url = orchestration(stack, other["workspaceId"], "events") + "?since_seq=0"
    with httpx.stream("GET", url, headers=key, timeout=30) as response:
        for frame in sse_events(response):
            seen.append(frame)
            if frame["event"] == "task.review_requested":
                break
    assert {f["data"]["payload"].get("task_id") for f in seen if f["event"].startswith("task.")} == {own}


async def test_the_logs_socket_of_another_workspaces_task_is_not_found(
    stack: Stack, api: httpx.Client, other: dict[str, str]
) -> None:
    (theirs,) = submit(api, task_request("Someone else's logs"))
    url = f"{stack.gateway_url.replace('http://', 'ws://')}/tasks/{theirs}/stream"
    for headers, code in ((bearer(other["apiKey"]), 4404), ({}, 4401)):
        async with connect(url, additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == code


def test_a_revoked_key_is_refused_and_the_workspaces_other_keys_go_on(stack: Stack, other: dict[str, str]) -> None:
    workspace = other["workspaceId"]
    second = httpx.post(
        f"{stack.gateway_url}/admin/workspaces/{workspace}/keys", json={"label": "ci"}, headers=admin(stack), timeout=10
    ).json()
    revoke = f"{stack.gateway_url}/admin/workspaces/{workspace}/keys/{other['keyId']}"
    assert httpx.delete(revoke, headers=admin(stack), timeout=10).json() == {"revoked": True}

    refused = httpx.get(f"{stack.gateway_url}/costs", headers=bearer(other["apiKey"]), timeout=10)
    assert refused.status_code == 403
    assert refused.json() == {"error": "forbidden", "message": "this API key was revoked"}
    assert httpx.get(f"{stack.gateway_url}/costs", headers=bearer(second["apiKey"]), timeout=10).status_code == 200

    shown = httpx.get(f"{stack.gateway_url}/admin/workspaces/{workspace}", headers=admin(stack), timeout=10).json()
    assert [(k["keyId"], k["revokedAt"] is not None) for k in shown["keys"]] == [
        (other["keyId"], True),
        (second["keyId"], False),
    ]
    assert other["apiKey"] not in json.dumps(shown) and second["apiKey"] not in json.dumps(shown)


def test_the_admin_api_needs_the_admin_token_and_refuses_a_second_workspace_of_one_id(stack: Stack) -> None:
    url = f"{stack.gateway_url}/admin/workspaces"
    assert httpx.post(url, json={}, timeout=10).status_code == 401
    assert httpx.post(url, json={}, headers=stack.auth, timeout=10).status_code == 401, "a workspace key is no admin"
    existing = httpx.post(url, json={"workspaceId": "default"}, headers=admin(stack), timeout=10)
    assert existing.status_code == 409
    assert existing.json()["error"] == "workspace_exists"
    bad = httpx.post(url, json={"workspaceId": "no spaces or dots."}, headers=admin(stack), timeout=10)
    assert bad.status_code == 400


def test_config_patch_merges_and_refuses_bad_known_keys(stack: Stack, other: dict[str, str]) -> None:
    url, key = config_url(stack, other["workspaceId"]), bearer(other["apiKey"])
    assert httpx.get(url, headers=key, timeout=10).json() == {}

    first = {"budgetUsd": 25.0, "questionExpirySeconds": 600, "team": {"slack": "#agents"}}
    assert httpx.patch(url, json=first, headers=key, timeout=10).json() == first
    second = {"team": {"oncall": "ana"}, "budgetUsd": None, "reviewPolicy": "required"}
    merged = httpx.patch(url, json=second, headers=key, timeout=10).json()

    expected = {"questionExpirySeconds": 600, "team": {"slack": "#agents", "oncall": "ana"}, "reviewPolicy": "required"}
    assert merged == expected
    assert httpx.get(url, headers=key, timeout=10).json() == expected
    for bad in ({"budgetUsd": -1}, {"maxConcurrentSubtasks": "many"}, {"defaultProvider": "gemini"}, [1, 2]):
        response = httpx.patch(url, json=bad, headers=key, timeout=10)
        assert response.status_code == 400, bad
        assert response.json()["error"] == "invalid_request"
    assert httpx.get(url, headers=key, timeout=10).json() == expected, "a refused patch changes nothing"


def test_workspace_defaults_apply_to_tasks_that_leave_them_out(stack: Stack, other: dict[str, str]) -> None:
    url, key = config_url(stack, other["workspaceId"]), bearer(other["apiKey"])
    httpx.patch(url, json={"planner": "llm", "defaultModel": "claude-haiku-4-5"}, headers=key, timeout=10)
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as mine:
        (defaulted,) = submit(mine, task_request("Plan me by default"))
        (explicit,) = submit(mine, task_request("My own choice", config={"planner": "template", "model": "gpt-5"}))
        task = wait_for(mine, defaulted, in_review_and_charged)
        chosen = mine.get(f"/tasks/{explicit}").json()["task"]

    assert task["plan"]["source"] == "llm"
    assert task["request"]["config"]["model"] == "claude-haiku-4-5"
    assert chosen["request"]["config"]["planner"] == "template" and chosen["request"]["config"]["model"] == "gpt-5"


def test_the_debug_dump_holds_the_workspaces_live_state_with_secrets_redacted(
    stack: Stack, other: dict[str, str]
) -> None:
    workspace, key = other["workspaceId"], bearer(other["apiKey"])
    httpx.patch(config_url(stack, workspace), json={"budgetUsd": 3.0}, headers=key, timeout=10)
    leaked = "sk-ant-api03-" + "k" * 40
    request = task_request("Keep the key out of the dump")
    request["repo"]["files"]["settings.py"] = f"ANTHROPIC_API_KEY = '{leaked}'\n"
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as mine:
        (task_id,) = submit(mine, request)
        wait_for(mine, task_id, in_review_and_charged)

    dump = httpx.get(orchestration(stack, workspace, "debug-dump"), headers=key, timeout=10).json()

    assert leaked not in json.dumps(dump)
    assert dump["workspace"]["config"] == {"budgetUsd": 3.0}
    assert [k["keyId"] for k in dump["keys"]] == [other["keyId"]]
    assert "key_hash" not in json.dumps(dump["keys"]) and other["apiKey"] not in json.dumps(dump)
    runs = [r for r in dump["runs"] if r["taskId"] == task_id]
    assert sorted(r["status"] for r in runs) == ["succeeded", "succeeded"]
    assert all(r["modelCalls"] == 1 and r["toolCalls"] >= 1 for r in runs)
    assert [g["taskId"] for g in dump["gates"] if g["open"]] == [task_id]
    assert dump["ledger"]["inputTokens"] == 2000 and dump["ledger"]["unpricedCharges"] == 0
    assert dump["consumers"]["durable"]["planner"]["lag"] >= 0
    assert dump["consumers"]["relay"]["lag"] >= 0


def test_odd_input_gets_a_4xx_never_a_500(stack: Stack, other: dict[str, str]) -> None:
    workspace, key = other["workspaceId"], bearer(other["apiKey"])
    base = f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration"
    assert httpx.get(f"{base}/questions/a%00b", headers=key, timeout=10).status_code == 404
    assert httpx.get(f"{stack.gateway_url}/admin/workspaces/a%00b", headers=admin(stack), timeout=10).status_code == 404
    assert httpx.get(f"{base}/log?page=99999999999999999999", headers=key, timeout=10).status_code == 400
    deep = '{"a":' * 3000 + "{}" + "}" * 3000  # nested deeper than any JSON library recurses
    for body in (deep, json.dumps({"team": "a\u0000b"})):
        response = httpx.patch(f"{base}/config", content=body, headers=key, timeout=10)
        assert response.status_code == 400, response.text


def test_key_hashes_never_reach_the_feed_or_the_dump(stack: Stack, other: dict[str, str]) -> None:
    workspace, key = other["workspaceId"], bearer(other["apiKey"])
    dump = httpx.get(orchestration(stack, workspace, "debug-dump"), headers=key, timeout=10).json()
    issued = [e for e in dump["events"] if e["type"] == "workspace.key_issued"]
    assert issued and all("key_hash" not in e["payload"] for e in issued)
    with httpx.stream("GET", orchestration(stack, workspace, "events") + "?since_seq=0", headers=key) as response:
        for frame in sse_events(response):
            if frame["event"] == "workspace.key_issued":
                assert frame["data"]["payload"] == {"key_id": other["keyId"], "label": "first key"}
                break


def test_an_auto_approve_review_policy_completes_tasks_without_a_human(stack: Stack, other: dict[str, str]) -> None:
    workspace, key = other["workspaceId"], bearer(other["apiKey"])
    policy = {"reviewPolicy": "auto_approve"}
    configured = httpx.patch(config_url(stack, workspace), json=policy, headers=key, timeout=10)
    assert configured.status_code == 200, configured.text
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as mine:
        (task_id,) = submit(mine, task_request("Ship it without asking"))
        task = wait_for(mine, task_id, lambda t: t["status"] == "completed")

    assert task["prUrl"]
    dump = httpx.get(orchestration(stack, workspace, "debug-dump"), headers=key, timeout=10).json()
    (decided,) = [e for e in dump["events"] if e["type"] == "gate.decided"]
    assert decided["payload"]["decision"] == "approve"
    assert "reviewPolicy is auto_approve" in decided["payload"]["feedback"]
