"""Spec 004's runs through HTTP, with the local model server scripted: `orch-research-report`
runs its two agent steps as Runs of the executor and pauses at the editor's gate; a step whose
model call is refused fails the run with the reason."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from libs.domain.orchestration_run import orchestration_run_id
from tests.e2e.helpers import model_calls, script_model

pytestmark = pytest.mark.e2e

RUN = "/api/v1/orchestrations/orch-research-report/run"


def finish(summary: str) -> list[dict[str, Any]]:
    return [{"name": "finish", "arguments": {"summary": summary}}]


def _run(stack: Stack, message: str) -> httpx.Response:
    return httpx.post(stack.gateway_url + RUN, json={"message": message}, headers=stack.auth, timeout=120)


def test_a_run_goes_through_its_agent_steps_and_pauses_at_the_human_gate(stack: Stack) -> None:
    topic = f"Synapse AI platform {uuid.uuid4().hex[:8]}"
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": finish(f"{topic} is a multi-agent system")},
        {"match": f'Write a report in Markdown on "{topic}"', "tool_calls": finish(f"# {topic}\n\nA report.")},
    )
    started = int(time.time() * 1000)

    response = _run(stack, topic)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paused", body
    prefix, _, ms = body["run_id"].rpartition("_")
    assert prefix == "run_orch-research-report" and int(ms) >= started
    assert body["human_input_required"] == {
        "step_id": "step-approve",
        "prompt": "Please review the draft article and decide whether to publish.",
        "fields": [
            {"name": "decision", "type": "select", "label": "Decision", "required": True, "options": "approve,reject"},
            {"name": "notes", "type": "text", "label": "Editor notes", "required": False},
        ],
        "agent_context": f"Draft article: # {topic}\n\nA report.\n",
    }
    # The ledger charged both steps' Runs to the orchestration run (their task).
    assert _charged(stack, body["run_id"]) == ["step-report@1", "step-research@1"]


def _charged(stack: Stack, run_id: str, count: int = 2, timeout: float = 10) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT subtask_id FROM rm_charges WHERE task_id = %s ORDER BY subtask_id",
                (orchestration_run_id(run_id),),
            ).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return [r[0] for r in rows]
        time.sleep(0.1)


def test_a_step_whose_model_refuses_fails_the_run_with_the_reason(stack: Stack) -> None:
    topic = f"refused topic {uuid.uuid4().hex[:8]}"
    script_model(stack, {"match": f"each with its source: {topic}", "status": 401})

    response = _run(stack, topic)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "failed", body
    assert body["response"].startswith("step step-research failed: ")
    assert "401" in body["response"]
    assert set(body) == {"status", "run_id", "response"}


def test_an_unknown_orchestration_is_404_and_a_bad_body_400(stack: Stack) -> None:
    unknown = httpx.post(
        stack.gateway_url + "/api/v1/orchestrations/orch-nope/run", json={"message": "x"}, headers=stack.auth
    )
    assert unknown.status_code == 404, unknown.text
    bad = httpx.post(stack.gateway_url + RUN, json={"message": 3}, headers=stack.auth)
    assert bad.status_code == 400, bad.text


def test_a_step_that_would_cross_the_cost_limit_is_not_started_and_the_run_fails_with_spec_004s_message(
    stack: Stack,
) -> None:
    topic = f"costly topic {uuid.uuid4().hex[:8]}"
    # The research costs $0.45 (150,000 tokens in at $3 a million): with the report's first call
    # estimated at about $0.06, the report would pass the definition's $0.50.
    script_model(
        stack,
        {
            "match": f"each with its source: {topic}",
            "tool_calls": finish("found"),
            "usage": {"input_tokens": 150_000, "output_tokens": 200},
        },
    )

    body = _run(stack, topic).json()

    assert body == {"status": "failed", "run_id": body["run_id"], "response": "Cost limit exceeded: $0.52 > max $0.50"}
    assert not model_calls(stack, f'Write a report in Markdown on "{topic}"'), "the report was not started"
    assert _charged(stack, body["run_id"], count=1) == ["step-research@1"]


def test_a_runs_own_cost_limit_overrides_the_definitions(stack: Stack) -> None:
    topic = f"cheap topic {uuid.uuid4().hex[:8]}"
    response = httpx.post(
        stack.gateway_url + RUN, json={"message": topic, "max_cost_usd": 0.05}, headers=stack.auth, timeout=60
    )

    assert response.json()["response"] == "Cost limit exceeded: $0.07 > max $0.05"
    assert not model_calls(stack, topic), "no step was started"
