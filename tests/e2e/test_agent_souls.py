"""Souls (spec 002, issue 16): a workspace's key holder sets the soul of an agent name; the
sessions of that name read it and validate drafts, with diagnostics placed by line and column;
an invalid soul is never stored. HTTP only."""

from __future__ import annotations

import uuid

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, model_calls, new_workspace, status_is, submit, wait_for
from tests.factories import task_request

pytestmark = pytest.mark.e2e

SOUL = """---
role: careful reviewer
tone: [plain, direct]
principles:
  - read the tests first
  - never weaken a check
version: "2"
---
Review like the code will run in production tomorrow.
"""

BROKEN = """---
tone: [plain]
principles:
  - ""
colour: blue
---
body
"""


def soul_url(stack: Stack, agent_name: str) -> str:
    return f"{stack.runtime_url}/api/v1/workspaces/default/agent-souls/{agent_name}"


def session_for(stack: Stack, agent_name: str) -> dict[str, str]:
    made = httpx.post(
        f"{stack.runtime_url}/api/v1/workspaces/default/agent-sessions",
        json={"name": "worker", "agent_name": agent_name},
        headers=stack.auth,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return bearer(made.json()["token"])


def test_a_set_soul_is_what_the_sessions_of_that_agent_name_read(stack: Stack) -> None:
    name = f"reviewer-{uuid.uuid4().hex[:8]}"
    session = session_for(stack, name)
    before = httpx.get(f"{stack.runtime_url}/api/agent/soul", headers=session, timeout=10)
    assert before.status_code == 200
    assert before.json()["present"] is False and before.json()["validation_status"] == "missing"

    stored = httpx.put(soul_url(stack, name), json={"document": SOUL}, headers=stack.auth, timeout=10)

    assert stored.status_code == 200, stored.text
    soul = httpx.get(f"{stack.runtime_url}/api/agent/soul", headers=session, timeout=10).json()
    assert soul["present"] and soul["valid"] and soul["active"] and soul["validation_status"] == "valid"
    assert soul["agent_name"] == name
    assert soul["frontmatter"]["role"] == "careful reviewer"
    assert soul["frontmatter"]["principles"] == ["read the tests first", "never weaken a check"]
    assert soul["body"].strip() == "Review like the code will run in production tomorrow."
    assert soul["digest"] == stored.json()["digest"] and soul["digest"].startswith("sha256:")
    assert soul["created_at"] and soul["revision_id"]
    other = session_for(stack, f"other-{uuid.uuid4().hex[:8]}")
    assert httpx.get(f"{stack.runtime_url}/api/agent/soul", headers=other, timeout=10).json()["present"] is False


def test_an_invalid_soul_is_refused_naming_each_error_and_the_stored_one_stays(stack: Stack) -> None:
    name = f"coder-{uuid.uuid4().hex[:8]}"
    assert httpx.put(soul_url(stack, name), json={"document": SOUL}, headers=stack.auth, timeout=10).status_code == 200

    refused = httpx.put(soul_url(stack, name), json={"document": BROKEN}, headers=stack.auth, timeout=10)

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_soul"
    assert "SOUL.md:4:5: field_empty" in refused.json()["message"]
    assert "field_required" in refused.json()["message"]
    still = httpx.get(f"{stack.runtime_url}/api/agent/soul", headers=session_for(stack, name), timeout=10).json()
    assert still["frontmatter"]["role"] == "careful reviewer", "the valid soul is still the one in force"


def test_validate_returns_placed_diagnostics_for_a_draft_and_stores_nothing(stack: Stack) -> None:
    name = f"drafter-{uuid.uuid4().hex[:8]}"
    session = session_for(stack, name)

    checked = httpx.post(
        f"{stack.runtime_url}/api/agent/soul/validate", json={"document": BROKEN}, headers=session, timeout=10
    )

    assert checked.status_code == 200, checked.text
    body = checked.json()
    assert body["valid"] is False and body["validation_status"] == "invalid" and body["active"] is False
    found = {(d["code"], d["severity"], d["field"], d["line"], d["column"]) for d in body["diagnostics"]}
    assert ("field_empty", "error", "principles[0]", 4, 5) in found
    assert ("unknown_field", "warning", "colour", 5, 1) in found
    assert any(d[0] == "field_required" and d[2] == "role" for d in found)
    soul = httpx.get(f"{stack.runtime_url}/api/agent/soul", headers=session, timeout=10).json()
    assert soul["present"] is False, "a validated draft is not stored"


@pytest.mark.parametrize(
    ("url_name", "body", "status"),
    [
        ("ok-name", {}, 400),
        ("ok-name", {"document": SOUL, "extra": 1}, 400),
        ("ok-name", {"document": 5}, 400),
        ("-starts-with-dash", {"document": SOUL}, 400),
    ],
)
def test_a_soul_request_that_is_not_valid_is_a_4xx_in_the_workspace_apis_format(
    stack: Stack, url_name: str, body: dict, status: int
) -> None:
    response = httpx.put(soul_url(stack, url_name), json=body, headers=stack.auth, timeout=10)

    assert response.status_code == status, response.text
    assert set(response.json()) == {"error", "message"}


def test_a_bad_validate_body_is_a_diagnostic(stack: Stack) -> None:
    session = session_for(stack, "agent")
    response = httpx.post(
        f"{stack.runtime_url}/api/agent/soul/validate", json={"document": ["not", "text"]}, headers=session, timeout=10
    )

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"diagnostic", "error"}
    assert response.json()["diagnostic"]["category"] == "validation"


def test_a_workspaces_soul_for_an_agent_type_shapes_the_executors_prompts_there_only(stack: Stack) -> None:
    """The executor's runs are sessions too: its codegen agents in a workspace whose `codegen`
    soul is set are told that soul in their system prompt; another workspace's are not."""
    own = new_workspace(stack, "souled")
    role = f"guardian of input validation {uuid.uuid4().hex[:8]}"
    url = f"{stack.runtime_url}/api/v1/workspaces/{own['workspaceId']}/agent-souls/codegen"
    document = f"---\nrole: {role}\nprinciples: [reject empty emails]\n---\nValidate at the edge.\n"
    stored = httpx.put(url, json={"document": document}, headers=bearer(own["apiKey"]), timeout=10)
    assert stored.status_code == 200, stored.text
    with httpx.Client(base_url=stack.gateway_url, headers=bearer(own["apiKey"]), timeout=30) as api:
        (souled,) = submit(api, task_request("Check the emails with a soul"))
        wait_for(api, souled, status_is("review"))
    with httpx.Client(base_url=stack.gateway_url, headers=stack.auth, timeout=30) as api:
        (plain,) = submit(api, task_request("Check the emails without a soul"))
        wait_for(api, plain, status_is("review"))

    (codegen,) = [c for c in model_calls(stack, "Check the emails with a soul") if "Write tests" not in str(c)]
    assert role in str(codegen["request"]) and "reject empty emails" in str(codegen["request"])
    assert all(role not in str(c["request"]) for c in model_calls(stack, "Check the emails without a soul"))
