"""Spec 004's runs with long answers, through HTTP: each step's long answer is stored once as a
blob and its event names it by digest (the feed shows the digest, the files endpoint serves it),
while every answer of spec 004 still shows it whole: the synchronous `shared_state`, the paused
`agent_context`, the streamed `step_complete` and `final_state`; and the next step's prompt
carries it whole to the model."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, model_calls, new_workspace, script_model, sse_events

pytestmark = pytest.mark.e2e

BASE = "/api/v1/orchestrations"


def finish(summary: str) -> list[dict[str, Any]]:
    return [{"name": "finish", "arguments": {"summary": summary}}]


def _script(stack: Stack, topic: str, notes: str) -> tuple[str, str, str]:
    """The research, the draft and the final article the three agent steps answer, all long
    (and without trailing blanks, which an agent's summary loses)."""
    research = f"{topic}: " + " ".join(["a finding, with its source (Smith, 2021)."] * 200)
    draft = f"# {topic}\n\n" + " ".join(["A paragraph of the report."] * 300)
    final = f"{draft}\n\nFinal."
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": finish(research)},
        {"match": f'Write a report in Markdown on "{topic}"', "tool_calls": finish(draft)},
        {"match": f"applying the editor's notes ({notes})", "tool_calls": finish(final)},
    )
    return research, draft, final


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _completed_steps(stack: Stack, workspace: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The workspace's `step_completed` payloads on the events feed, up to its run's end."""
    url = f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/events?since_seq=0"
    found = []
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            if frame["event"] == "orchestration_run.step_completed":
                found.append(frame["data"]["payload"])
            if frame["event"] == "orchestration_run.completed":
                return found
    return found


def test_long_answers_are_blobs_by_digest_and_the_synchronous_answers_show_them_whole(stack: Stack) -> None:
    mine = new_workspace(stack, "long-answers")
    auth = bearer(mine["apiKey"])
    topic, notes = f"owls {uuid.uuid4().hex[:8]}", f"ok {uuid.uuid4().hex[:8]}"
    research, draft, final = _script(stack, topic, notes)
    run = f"{BASE}/orch-research-report/run"

    paused = httpx.post(stack.gateway_url + run, json={"message": topic}, headers=auth, timeout=120)

    assert paused.status_code == 200, paused.text
    body = paused.json()
    assert body["status"] == "paused", body
    assert body["human_input_required"]["agent_context"] == f"Draft article: {draft}\n"
    # The report step's prompt carried the research whole, though the state holds it by digest.
    assert model_calls(stack, f'Write a report in Markdown on "{topic}"', research)

    resume = f"{BASE}/runs/{body['run_id']}/resume"
    done = httpx.post(stack.gateway_url + resume, json={"response": {"decision": "approve", "notes": notes}},
                      headers=auth, timeout=120)  # fmt: skip

    assert done.status_code == 200, done.text
    answer = done.json()
    assert answer["status"] == "completed", answer
    assert answer["shared_state"] == {
        "query": topic, "research_results": research, "article": final, "decision": "approve", "notes": notes,
    }  # fmt: skip
    # The events name each answer by digest; the files endpoint serves it to its workspace.
    completed = _completed_steps(stack, mine["workspaceId"], auth)
    named = {p["output"]: p["value_ref"] for p in completed if p["output"] is not None}
    assert all(p["value"] is None for p in completed if p["output"] is not None)
    assert named == {
        "research_results": {"digest": _digest(research), "size": len(research)},
        "article": {"digest": _digest(final), "size": len(final)},
    }
    files = f"{stack.gateway_url}/api/v1/workspaces/{mine['workspaceId']}/orchestration/files/{_digest(research)}"
    served = httpx.get(files, headers=auth, timeout=10)
    assert served.status_code == 200 and served.json()["content"] == research


def test_a_streamed_run_sends_long_answers_whole(stack: Stack) -> None:
    topic, notes = f"bats {uuid.uuid4().hex[:8]}", f"fine {uuid.uuid4().hex[:8]}"
    research, draft, final = _script(stack, topic, notes)

    first = _stream(stack, f"{BASE}/orch-research-report/run/stream", {"message": topic})
    outputs = {f["data"]["output_key"]: f["data"]["output"] for f in first if f["event"] == "step_complete"}
    assert outputs == {"research_results": research, "article": draft}
    asked = first[-2]["data"]
    assert asked["agent_context"] == f"Draft article: {draft}\n"

    resume = f"{BASE}/runs/{asked['run_id']}/resume/stream"
    second = _stream(stack, resume, {"response": {"decision": "approve", "notes": notes}})
    finished = [f["data"] for f in second if f["event"] == "step_complete" and f["data"]["step_id"] == "step-finalize"]
    assert [f["output"] for f in finished] == [final]
    assert second[-2]["data"]["final_state"]["article"] == final
    assert second[-2]["data"]["final_state"]["research_results"] == research


def _stream(stack: Stack, path: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream("POST", stack.gateway_url + path, json=body, headers=stack.auth, timeout=120) as response:
        assert response.status_code == 200, response.read()
        return list(sse_events(response))
