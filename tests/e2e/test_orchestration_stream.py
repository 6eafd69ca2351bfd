"""Spec 004's streamed runs through HTTP, with the local model server scripted: `run/stream` and
`resume/stream` send the nine SSE types in order, each frame's id the seq of the event it comes
from; a client that drops picks the run up again from spec 001's events feed and misses nothing."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from libs.domain.orchestration_run import orchestration_run_id
from tests.e2e.helpers import FEED, bearer, new_workspace, script_model, sse_events

pytestmark = pytest.mark.e2e

BASE = "/api/v1/orchestrations"


def finish(summary: str) -> dict[str, Any]:
    return {"name": "finish", "arguments": {"summary": summary}}


@contextmanager
def _stream(stack: Stack, path: str, body: dict[str, Any]) -> Iterator[Iterator[dict[str, Any]]]:
    with httpx.stream("POST", stack.gateway_url + path, json=body, headers=stack.auth, timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield sse_events(response)


def _script_code_change(stack: Stack, request: str) -> None:
    script_model(
        stack,
        # The plan step looks at the repository with a tool, then answers.
        {"match": f"plan this change, file by file, without changing anything: {request}",
         "tool_calls": [{"name": "list_files", "arguments": {}}]},
        {"match": f"plan this change, file by file, without changing anything: {request}",
         "tool_calls": [finish("Change README.md")]},
        {"match": f"Make this change: {request}", "tool_calls": [finish("README.md changed")]},
    )  # fmt: skip


def test_a_streamed_run_and_its_streamed_resume_send_the_nine_types_in_order_with_seqs(stack: Stack) -> None:
    request = f"Say hello {uuid.uuid4().hex[:8]}"
    _script_code_change(stack, request)

    with _stream(stack, BASE + "/orch-code-change/run/stream", {"message": request}) as frames:
        first = list(frames)

    assert [(f["event"], f["data"].get("step_id")) for f in first] == [
        ("step_start", "step-plan"),
        ("agent_turn", "step-plan"),
        ("tool_execution", "step-plan"),
        ("tool_result", "step-plan"),
        ("agent_turn", "step-plan"),
        ("tool_execution", "step-plan"),  # finish is a tool call too
        ("tool_result", "step-plan"),
        ("step_complete", "step-plan"),
        ("step_start", "step-change"),
        ("agent_turn", "step-change"),
        ("tool_execution", "step-change"),
        ("tool_result", "step-change"),
        ("step_complete", "step-change"),
        ("step_start", "step-review"),
        ("human_input_required", "step-review"),
        ("done", None),
    ]
    run_id = first[0]["data"]["run_id"]
    assert all(f["data"]["run_id"] == run_id for f in first)
    seqs = [f["id"] for f in first]
    assert seqs == sorted(seqs) and seqs[-1] == seqs[-2], "ids are the events' seqs; done repeats the last"
    by_type = {f["event"]: f["data"] for f in reversed(first)}  # the first frame of each type
    assert by_type["step_start"] == {"run_id": run_id, "step_id": "step-plan", "step_name": "Plan", "type": "agent"}
    assert by_type["tool_execution"] == {"run_id": run_id, "step_id": "step-plan", "tool_name": "list_files",
                                         "args": {"target": None}}  # fmt: skip
    assert by_type["tool_result"]["status"] == "ok" and by_type["tool_result"]["preview"]
    assert by_type["agent_turn"]["turn"] == 1 and by_type["agent_turn"]["tool_calls"] == 1
    plan = next(f["data"] for f in first if f["event"] == "step_complete")
    assert plan["output_key"] == "plan" and plan["output"] == "Change README.md"
    assert plan["turns"] == 2 and plan["cost_usd"] > 0
    assert by_type["human_input_required"]["fields"][0]["options"] == "approve,revise"
    assert by_type["done"] == {"run_id": run_id, "status": "paused"}

    resume = f"{BASE}/runs/{run_id}/resume/stream"
    with _stream(stack, resume, {"response": {"decision": "approve"}}) as frames:
        second = list(frames)

    assert [(f["event"], f["data"].get("step_id")) for f in second] == [
        ("step_complete", "step-review"),
        ("step_start", "step-again"),
        ("step_complete", "step-again"),
        ("orchestration_complete", None),
        ("done", None),
    ]
    assert second[0]["id"] > seqs[-1]
    done = second[-2]["data"]
    assert done["status"] == "completed" and done["response"] == "Plan → Change → Review complete."
    assert done["final_state"]["decision"] == "approve" and done["final_state"]["summary"] == "README.md changed"
    assert [s["step_id"] for s in done["step_history"]] == ["step-plan", "step-change", "step-review", "step-again"]
    # Every type spec 004 names was sent, once the run and its resume are put together.
    assert {f["event"] for f in first + second} == {
        *("step_start", "step_complete", "agent_turn", "tool_execution", "tool_result"),
        *("human_input_required", "orchestration_complete", "orchestration_error", "done"),
    } - {"orchestration_error"}


def test_a_streamed_run_that_fails_ends_with_orchestration_error(stack: Stack) -> None:
    topic = f"refused {uuid.uuid4().hex[:8]}"
    script_model(stack, {"match": f"each with its source: {topic}", "status": 401})

    with _stream(stack, BASE + "/orch-research-report/run/stream", {"message": topic}) as frames:
        got = list(frames)

    assert [f["event"] for f in got][-2:] == ["orchestration_error", "done"]
    error = got[-2]["data"]
    assert error["status"] == "failed" and error["step_id"] == "step-research"
    assert error["error"].startswith("step step-research failed: ")
    assert got[-1]["data"]["status"] == "failed"


def test_a_dropped_stream_is_picked_up_from_the_events_feed_without_a_gap(stack: Stack) -> None:
    request = f"Say goodbye {uuid.uuid4().hex[:8]}"
    _script_code_change(stack, request)

    with _stream(stack, BASE + "/orch-code-change/run/stream", {"message": request}) as frames:
        seen = []
        for frame in frames:
            seen.append(frame)
            if frame["event"] == "step_complete":
                break  # the client drops here
    run_id, last = seen[0]["data"]["run_id"], seen[-1]["id"]
    run_uuid = str(orchestration_run_id(run_id))

    rest = _feed_until_paused(stack, last, run_uuid)

    assert all(e["seq"] > last for e in rest)
    types = [e["type"] for e in rest if e["type"].startswith("orchestration_run.") or e["type"] == "run.model_called"]
    assert types == [
        "orchestration_run.step_started",
        "orchestration_run.step_dispatched",
        "run.model_called",
        "orchestration_run.step_completed",
        "orchestration_run.step_started",
        "orchestration_run.paused",
    ]
    paused = rest[-1]["payload"]
    assert paused["step_id"] == "step-review" and paused["orchestration_run_id"] == run_uuid


def _feed_until_paused(stack: Stack, since: int, run_uuid: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The run's events on the events feed after `since`, up to its pause."""
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    url = f"{stack.stream_url}{FEED}"
    with httpx.stream("GET", url, params={"since_seq": str(since)}, headers=stack.auth, timeout=timeout) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            event = frame["data"]
            payload = event["payload"]
            if run_uuid in (payload.get("orchestration_run_id"), payload.get("task_id")):
                found.append(event)
                if event["type"] == "orchestration_run.paused":
                    return found
            assert time.monotonic() < deadline, found
    return found


def test_the_streams_take_a_workspace_key_and_show_a_run_only_to_its_workspace(stack: Stack) -> None:
    topic = f"private {uuid.uuid4().hex[:8]}"
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": [finish("found")]},
        {"match": f'Write a report in Markdown on "{topic}"', "tool_calls": [finish("# Report")]},
    )
    with _stream(stack, BASE + "/orch-research-report/run/stream", {"message": topic}) as frames:
        run_id = next(frames)["data"]["run_id"]
        assert [f["event"] for f in frames][-1] == "done"
    resume = f"{stack.gateway_url}{BASE}/runs/{run_id}/resume/stream"
    body = {"response": {"decision": "approve"}}

    start = httpx.post(f"{stack.gateway_url}{BASE}/orch-research-report/run/stream", json={"message": "x"})
    assert start.status_code == 401, start.text
    assert httpx.post(resume, json=body).status_code == 401
    other = new_workspace(stack, "orch-stream")
    theirs = httpx.post(resume, json=body, headers=bearer(other["apiKey"]), timeout=30)
    assert theirs.status_code == 404, theirs.text
    assert theirs.headers["content-type"].startswith("application/json")
    unknown = httpx.post(f"{stack.gateway_url}{BASE}/orch-nope/run/stream", json={"message": "x"}, headers=stack.auth)
    assert unknown.status_code == 404, unknown.text


def test_spec_004s_example_streamed_pauses_at_the_editors_gate_and_its_streamed_resume_completes(stack: Stack) -> None:
    topic = f"AI orchestration trends {uuid.uuid4().hex[:8]}"
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": [finish("three sources")]},
        {"match": f'Write a report in Markdown on "{topic}"', "tool_calls": [finish(f"# {topic}")]},
        {"match": "Finish this approved article", "tool_calls": [finish(f"# {topic}\n\nFinal.")]},
    )
    with _stream(stack, BASE + "/orch-research-report/run/stream", {"message": topic}) as frames:
        first = list(frames)
    asked = first[-2]
    assert asked["event"] == "human_input_required" and asked["data"]["step_id"] == "step-approve"
    run_id = asked["data"]["run_id"]

    resume = f"{BASE}/runs/{run_id}/resume/stream"
    with _stream(stack, resume, {"response": {"decision": "approve", "notes": "Approved via API"}}) as frames:
        second = list(frames)

    assert [f["event"] for f in second][-2:] == ["orchestration_complete", "done"]
    final = second[-2]["data"]
    assert final["final_state"] == {
        "query": topic,
        "research_results": "three sources",
        "article": f"# {topic}\n\nFinal.",
        "decision": "approve",
        "notes": "Approved via API",
    }
    assert [s["step_id"] for s in final["step_history"]] == [
        "step-research",
        "step-report",
        "step-approve",
        "step-revise",
        "step-finalize",
    ]
    assert [f["id"] for f in second] == sorted(f["id"] for f in second)
    assert second[0]["id"] > first[-1]["id"]
