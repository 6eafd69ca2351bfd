"""Spec 003's credentials through HTTP on the running stack: written and never read back (a read
says configured and the last four characters), checked against the provider through its SDK, used
by the workspace's agents for their model calls, and found in clear nowhere: not in a response,
an event, the feed, the dump, a read model, a log line or a file the stack keeps."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    in_review_and_charged,
    log_head,
    model_calls,
    new_workspace,
    orchestration,
    script_model,
    snapshot_read_models,
    sse_events,
    submit,
    task_request,
    wait_for,
    wait_quiet,
)

pytestmark = pytest.mark.e2e

NOT_CONFIGURED = {"configured": False, "last4": None}
ENVIRONMENT_KEY_LAST4 = "rver"  # the stack's own key for the local model server: "local-model-server"


def secret(ending: str, prefix: str = "sk-ant-api03-") -> str:
    """A key of the test's own, unique, ending in `ending` (what a read may show of it)."""
    return f"{prefix}{uuid.uuid4().hex}{uuid.uuid4().hex}{ending}"


@pytest.fixture
def workspace(stack: Stack) -> dict[str, str]:
    return new_workspace(stack, "creds")


@pytest.fixture
def api(stack: Stack, workspace: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(workspace["apiKey"])) as client:
        yield client


def test_a_provider_key_is_never_read_back_only_whether_one_is_stored_and_its_last_four(
    stack: Stack, api: httpx.Client
) -> None:
    assert api.get("/api/config/provider-credentials").json() == {"anthropic": NOT_CONFIGURED, "openai": NOT_CONFIGURED}
    key = secret("k3Y9")

    stored = api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}})

    expected = {"anthropic": {"configured": True, "last4": "k3Y9"}, "openai": NOT_CONFIGURED}
    assert stored.status_code == 200, stored.text
    assert stored.json() == expected
    read = api.get("/api/config/provider-credentials")
    assert read.json() == expected
    assert key[:-4] not in stored.text + read.text
    other = new_workspace(stack, "creds-other")
    theirs = httpx.get(f"{stack.gateway_url}/api/config/provider-credentials", headers=bearer(other["apiKey"]))
    assert theirs.json() == {"anthropic": NOT_CONFIGURED, "openai": NOT_CONFIGURED}


def test_null_clears_a_key_and_a_provider_left_out_keeps_its_own(api: httpx.Client) -> None:
    both = {"anthropic": {"apiKey": secret("AAAA")}, "openai": {"apiKey": secret("OOOO", "sk-proj-")}}
    assert api.put("/api/config/provider-credentials", json=both).status_code == 200

    cleared = api.put("/api/config/provider-credentials", json={"openai": {"apiKey": None}})

    assert cleared.json() == {"anthropic": {"configured": True, "last4": "AAAA"}, "openai": NOT_CONFIGURED}
    assert api.put("/api/config/provider-credentials", json={}).json() == cleared.json()
    assert api.get("/api/config/provider-credentials").json() == cleared.json()


def test_the_github_token_is_stored_and_cleared_the_same_way(api: httpx.Client) -> None:
    token = secret("gh42", "ghp_")

    stored = api.put("/api/config/credentials", json={"githubToken": token})
    unchanged = api.put("/api/config/credentials", json={})
    cleared = api.put("/api/config/credentials", json={"githubToken": None})

    assert stored.json() == {"githubToken": {"configured": True, "last4": "gh42"}}
    assert unchanged.json() == stored.json()
    assert cleared.json() == {"githubToken": NOT_CONFIGURED}


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/api/config/provider-credentials", {"anthropic": {"apiKey": "short"}}, "$.anthropic.apiKey"),
        ("/api/config/provider-credentials", {"anthropic": {"apiKey": "sk-ant with a space inside"}}, "apiKey"),
        ("/api/config/provider-credentials", {"anthropic": {"apiKey": 42}}, "$.anthropic.apiKey"),
        ("/api/config/provider-credentials", {"anthropic": {}}, "apiKey"),
        ("/api/config/provider-credentials", {"mistral": {"apiKey": secret("MMMM")}}, "mistral"),
        ("/api/config/provider-credentials", {"anthropic": {"apiKey": secret("AAAA"), "extra": 1}}, "extra"),
        ("/api/config/credentials", {"githubToken": "ghp_\n" + "x" * 30}, "githubToken"),
        ("/api/config/credentials", {"token": secret("gh42", "ghp_")}, "token"),
    ],
)
def test_a_credential_that_is_not_valid_is_a_400_naming_it_and_changes_nothing(
    stack: Stack, api: httpx.Client, path: str, body: dict[str, Any], named: str
) -> None:
    head = log_head(stack)

    response = api.put(path, json=body)

    assert response.status_code == 400, response.text
    assert named in response.json()["message"]
    assert set(response.json()) == {"error", "message"}
    assert log_head(stack) == head
    assert api.get("/api/config/provider-credentials").json() == {"anthropic": NOT_CONFIGURED, "openai": NOT_CONFIGURED}


def test_providers_say_where_each_key_comes_from_and_which_models_they_price(api: httpx.Client) -> None:
    before = api.get("/api/config/providers").json()
    assert api.put("/api/config/provider-credentials", json={"openai": {"apiKey": secret("OOOO")}}).status_code == 200

    after = api.get("/api/config/providers").json()

    # The stack gives the services a key of their own for each provider (the local model server's).
    assert (before["anthropic"]["keySource"], before["openai"]["keySource"]) == ("environment", "environment")
    assert (after["anthropic"]["keySource"], after["openai"]["keySource"]) == ("environment", "workspace")
    assert {"claude-sonnet-4-6", "claude-haiku-4-5"} <= set(after["anthropic"]["models"])
    assert {"gpt-5.4", "gpt-5.4-mini"} <= set(after["openai"]["models"])
    assert not any(m.startswith("claude") for m in after["openai"]["models"])


def test_validate_checks_the_stored_key_with_anthropic_through_its_sdk(stack: Stack, api: httpx.Client) -> None:
    key = secret("V4LD")
    assert api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}}).status_code == 200

    response = api.post("/api/config/validate/anthropic")

    assert response.status_code == 200, response.text
    assert response.json() == {"valid": True}
    checks = [c for c in model_calls(stack) if c["endpoint"] == "count_tokens" and c["key_last4"] == "V4LD"]
    assert len(checks) == 1


def test_validate_says_why_anthropic_refused_a_key_without_repeating_the_key(stack: Stack, api: httpx.Client) -> None:
    refused = secret("N0PE")
    # The provider quotes the key back in its message: the answer must not.
    said = {"type": "error", "error": {"type": "authentication_error", "message": f"invalid x-api-key: {refused}"}}
    script_model(stack, {"status": 401, "api_key": refused, "error_body": said})

    response = api.post("/api/config/validate/anthropic", json={"apiKey": refused})

    assert response.status_code == 200, response.text
    assert response.json() == {"valid": False, "error": "Anthropic answered HTTP 401: invalid x-api-key: [redacted]"}
    assert refused[:-4] not in response.text


def test_validate_without_a_stored_key_or_one_in_the_body_is_a_404(api: httpx.Client) -> None:
    response = api.post("/api/config/validate/anthropic", json={})

    assert response.status_code == 404
    assert "PUT /api/config/provider-credentials" in response.json()["message"]
    bad = api.post("/api/config/validate/anthropic", json={"apiKey": "short"})
    assert bad.status_code == 400 and "apiKey" in bad.json()["message"]


def test_a_workspaces_agents_call_the_provider_with_its_stored_key_and_another_workspaces_with_the_environments(
    stack: Stack, api: httpx.Client
) -> None:
    first, second = secret("ONE1"), secret("TWO2")
    assert api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": first}}).status_code == 200
    description = f"Add input validation, own key {uuid.uuid4().hex[:8]}"
    (task,) = submit(api, task_request(description))
    wait_for(api, task, in_review_and_charged)
    other = new_workspace(stack, "creds-env")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(other["apiKey"])) as theirs:
        their_description = f"Add input validation, environment key {uuid.uuid4().hex[:8]}"
        (their_task,) = submit(theirs, task_request(their_description))
        wait_for(theirs, their_task, in_review_and_charged)
    # A key stored again reaches the next run: the executor drops what it kept of the workspace.
    assert api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": second}}).status_code == 200
    later = f"Add input validation, changed key {uuid.uuid4().hex[:8]}"
    (later_task,) = submit(api, task_request(later))
    wait_for(api, later_task, in_review_and_charged)

    for text, last4 in ((description, "ONE1"), (their_description, ENVIRONMENT_KEY_LAST4), (later, "TWO2")):
        calls = model_calls(stack, text)
        # Codegen and test: a model call each, with the key of the task's workspace.
        assert len(calls) >= 2, text
        assert {c["key_last4"] for c in calls} == {last4}, text


def test_a_stored_credential_is_in_clear_in_no_response_event_feed_dump_read_model_log_or_file(
    stack: Stack, api: httpx.Client, workspace: dict[str, str]
) -> None:
    anthropic_key, openai_key, token = secret("AN4K"), secret("OP4K", "sk-proj-"), secret("GH4T", "ghp_")
    checked_only = secret("CHK1")  # sent to be checked, never stored
    answers = [
        api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": anthropic_key}}),
        api.put("/api/config/provider-credentials", json={"openai": {"apiKey": openai_key}}),
        api.put("/api/config/credentials", json={"githubToken": token}),
        api.get("/api/config/provider-credentials"),
        api.get("/api/config/providers"),
        api.get("/api/config"),
        api.post("/api/config/validate/anthropic"),
        api.post("/api/config/validate/anthropic", json={"apiKey": checked_only}),
    ]
    assert [a.status_code for a in answers] == [200] * len(answers)
    (task,) = submit(api, task_request(f"Add input validation with stored keys {uuid.uuid4().hex[:8]}"))
    answers.append(api.get(f"/tasks/{wait_for(api, task, in_review_and_charged)['id']}"))
    wait_quiet(stack)
    dump = debug_dump(stack, workspace["workspaceId"], api.headers)
    last_seq = max(e["seq"] for e in dump["events"])
    feed = read_feed(stack, workspace, last_seq)

    secrets = [anthropic_key, openai_key, token, checked_only]
    # Each whole, and each but the four characters a read may show.
    needles = [s.encode() for s in secrets] + [s[:-4].encode() for s in secrets]
    places: dict[str, bytes] = {
        "responses": b"\n".join(a.content for a in answers),
        "events feed": feed.encode(),
        "debug dump": httpx.Response(200, json=dump).content,
        "event store rows": event_rows(stack),
        "read models": repr(snapshot_read_models(stack.database_url)).encode(),
        **{f"log {p.name}": p.read_bytes() for p in (stack.data_dir / "logs").glob("*.log")},
    }
    for place, content in places.items():
        assert content, place
        for needle in needles:
            assert needle not in content, f"a credential in clear in the {place}"
    # The secrets' events are on the feed and in the dump, without their sealed values.
    secret_events = [e for e in dump["events"] if e["type"] == "workspace.secret_set"]
    assert [e["payload"] for e in secret_events] == [
        {"name": "anthropic_api_key", "last4": "AN4K"},
        {"name": "openai_api_key", "last4": "OP4K"},
        {"name": "github_token", "last4": "GH4T"},
    ]
    assert "sealed" not in feed
    # At rest: no file the stack keeps (PostgreSQL's data and WAL, NATS's streams, the logs) holds one.
    for path in files_under(stack.data_dir):
        content = path.read_bytes()
        assert not any(needle in content for needle in needles), f"a credential in clear in {path}"


def read_feed(stack: Stack, workspace: dict[str, str], until: int) -> str:
    """The workspace's events feed from its start, as the SSE frames' data, up to seq `until`."""
    url = orchestration(stack, workspace["workspaceId"], "events") + "?since_seq=0"
    frames = []
    with httpx.stream("GET", url, headers=bearer(workspace["apiKey"]), timeout=30) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            frames.append(str(frame))
            if frame["id"] >= until:
                break
    return "\n".join(frames)


def event_rows(stack: Stack) -> bytes:
    with psycopg.connect(stack.database_url) as conn:
        rows = conn.execute("SELECT topic, state FROM orchestrator_events").fetchall()
    return b"\n".join(topic.encode() + b" " + bytes(state) for topic, state in rows)


def files_under(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def test_without_secrets_key_the_credential_routes_say_what_to_set_and_the_settings_still_work(
    stack: Stack, api: httpx.Client
) -> None:
    stack.services["gateway"].stop()
    try:
        stack.restart_service("gateway", env={"SECRETS_KEY": ""})
        refused = [
            api.put("/api/config/credentials", json={"githubToken": secret("GH4T", "ghp_")}),
            api.get("/api/config/provider-credentials"),
            api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": secret("AAAA")}}),
            api.post("/api/config/validate/anthropic"),
        ]
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "secrets_key_missing"
            assert "SECRETS_KEY" in response.json()["message"]
        assert api.put("/api/config", json={"commandPrefix": "/bot"}).status_code == 200
        assert api.get("/api/config").json()["commandPrefix"] == "/bot"
        assert api.get("/api/config/providers").status_code == 200
        # A key sent to be checked needs no sealing.
        checked = api.post("/api/config/validate/anthropic", json={"apiKey": secret("CHK2")})
        assert checked.json() == {"valid": True}
    finally:
        stack.services["gateway"].stop()
        stack.restart_service("gateway")
    assert api.get("/api/config/provider-credentials").status_code == 200
