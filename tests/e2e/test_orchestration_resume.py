"""Spec 004's complete example through HTTP, with the local model server scripted: run, pause at
the editor's gate, resume, completed with `shared_state` and `step_history`; a rejection loops
back to the report; and resume's refusals (fields that do not fit, a run not paused, an unknown
run, another workspace's run), each changing nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, new_workspace, script_model

pytestmark = pytest.mark.e2e

BASE = "/api/v1/orchestrations"
RUN = BASE + "/orch-research-report/run"


def finish(summary: str) -> list[dict[str, Any]]:
    return [{"name": "finish", "arguments": {"summary": summary}}]


def _post(stack: Stack, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(stack.gateway_url + path, json=body, headers=headers or stack.auth, timeout=120)


def _resume(stack: Stack, run_id: str, response: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return _post(stack, f"{BASE}/runs/{run_id}/resume", {"response": response}, headers)


def _paused_run(stack: Stack, topic: str, drafts: int = 1) -> dict[str, Any]:
    """A run of `orch-research-report` paused at the editor's gate, its agent steps scripted."""
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": finish(f"{topic}: three sources")},
        *(
            {"match": f'Write a report in Markdown on "{topic}"', "tool_calls": finish(f"# {topic}\n\nDraft {n}.")}
            for n in range(1, drafts + 1)
        ),
        {"match": "Finish this approved article", "tool_calls": finish(f"# {topic}\n\nFinal.")},
    )
    response = _post(stack, RUN, {"message": topic})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paused", body
    return body


def test_spec_004s_example_runs_pauses_at_the_gate_and_resumes_to_completed(stack: Stack) -> None:
    topic = f"AI orchestration trends {uuid.uuid4().hex[:8]}"
    paused = _paused_run(stack, topic)
    assert paused["human_input_required"]["prompt"] == "Please review the draft article and decide whether to publish."

    resumed = _resume(stack, paused["run_id"], {"decision": "approve", "notes": "Approved via API"})

    assert resumed.status_code == 200, resumed.text
    final = resumed.json()
    assert final["status"] == "completed", final
    assert final["run_id"] == paused["run_id"]
    assert final["response"] == "Research → Report complete."
    assert final["shared_state"] == {
        "query": topic,
        "research_results": f"{topic}: three sources",
        "article": f"# {topic}\n\nFinal.",
        "decision": "approve",
        "notes": "Approved via API",
    }
    history = final["step_history"]
    assert [(s["step_id"], s["type"], s["status"]) for s in history] == [
        ("step-research", "agent", "completed"),
        ("step-report", "agent", "completed"),
        ("step-approve", "human", "completed"),
        ("step-revise", "condition", "completed"),
        ("step-finalize", "agent", "completed"),
    ]
    assert [s["step_name"] for s in history][:2] == ["Research", "Report"]
    agents = [s for s in history if s["type"] == "agent"]
    assert all(s["turns"] == 1 and s["cost_usd"] > 0 for s in agents), agents
    assert all(s["turns"] == 0 and s["cost_usd"] == 0 for s in history if s["type"] != "agent")

    # The same resume again (a client's retry) answers the run's state and resumes nothing.
    again = _resume(stack, paused["run_id"], {"decision": "approve", "notes": "Approved via API"})
    assert again.status_code == 200, again.text
    assert again.json() == final
    # Any other resume of a run that is not paused is refused.
    other = _resume(stack, paused["run_id"], {"decision": "reject", "notes": "No"})
    assert other.status_code == 409, other.text
    assert other.json() == {
        "error": "run_not_paused",
        "message": f"run {paused['run_id']} is completed, not paused at a human step",
    }


def test_a_rejected_draft_goes_back_to_the_report_and_pauses_at_a_new_gate(stack: Stack) -> None:
    topic = f"quantum computing {uuid.uuid4().hex[:8]}"
    paused = _paused_run(stack, topic, drafts=2)

    again = _resume(stack, paused["run_id"], {"decision": "reject", "notes": "Cite the sources"})

    assert again.status_code == 200, again.text
    second = again.json()
    assert second["status"] == "paused", second
    assert second["human_input_required"]["agent_context"] == f"Draft article: # {topic}\n\nDraft 2.\n"
    final = _resume(stack, paused["run_id"], {"decision": "approve"}).json()
    assert final["status"] == "completed", final
    assert final["shared_state"]["decision"] == "approve" and final["shared_state"]["notes"] is None
    assert [s["step_id"] for s in final["step_history"]] == [
        "step-research",
        *("step-report", "step-approve", "step-revise") * 2,
        "step-finalize",
    ]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        ({"decision": "maybe"}, "response.decision must be one of: approve, reject"),
        ({"notes": "fine"}, "response.decision is required"),
        ({"decision": "approve", "mood": "good"}, "response.mood is not a field of this step"),
        ("approve", "response must be an object with the fields decision, notes"),
    ],
)
def test_a_response_that_does_not_fit_the_gate_is_400_and_the_run_stays_paused(
    stack: Stack, response: Any, message: str
) -> None:
    paused = _paused_run(stack, f"fit {uuid.uuid4().hex[:8]}")

    refused = _resume(stack, paused["run_id"], response)

    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_request"
    assert refused.json()["message"].startswith(message)
    # Nothing changed: the right response still resumes it.
    assert _resume(stack, paused["run_id"], {"decision": "approve"}).json()["status"] == "completed"


def test_an_unknown_run_or_another_workspaces_run_is_404_and_a_bad_body_400(stack: Stack) -> None:
    unknown = _resume(stack, "run_orch-research-report_1734567890", {"decision": "approve"})
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["error"] == "Not found"

    paused = _paused_run(stack, f"private {uuid.uuid4().hex[:8]}")
    other = new_workspace(stack, "orch-other")
    theirs = _resume(stack, paused["run_id"], {"decision": "approve"}, bearer(other["apiKey"]))
    assert theirs.status_code == 404, theirs.text

    no_key = httpx.post(f"{stack.gateway_url}{BASE}/runs/{paused['run_id']}/resume", json={"response": "x"})
    assert no_key.status_code == 401, no_key.text
    for body in ({}, {"response": 3}, {"response": {}, "extra": 1}):
        bad = _post(stack, f"{BASE}/runs/{paused['run_id']}/resume", body)
        assert bad.status_code == 400, (body, bad.text)
    assert _resume(stack, paused["run_id"], {"decision": "approve"}).json()["status"] == "completed"
