"""Real agents end to end: self-heal, provider failures and task chaining, through HTTP only,
with the local model server scripted per test (each test matches on its own task's text)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    FEED,
    in_review_and_charged,
    model_calls,
    script_model,
    sse_events,
    status_is,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e

# claude-sonnet-4-20250514 at $3 / $15 per million tokens; 1,000 in and 200 out per call.
USD_PER_CALL = (1000 * 3.0 + 200 * 15.0) / 1_000_000
ORIGINAL = "def register(user):\n    return user\n"


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


def unique(what: str) -> str:
    return f"{what} {uuid.uuid4().hex[:10]}"


def first_turn_of(description: str) -> str:
    """Text only the first subtask's requests contain (the second's say `Write tests for: ...`)."""
    return f"Task: {description}\n"


def write_and_finish(path: str, content: str, summary: str) -> list[dict[str, Any]]:
    return [
        {"name": "write_file", "arguments": {"path": path, "content": content}},
        {"name": "finish", "arguments": {"summary": summary}},
    ]


def log_head(stack: Stack) -> int:
    return httpx.get(
        f"{stack.stream_url}/api/v1/workspaces/default/orchestration/debug-dump", headers=stack.auth
    ).json()["logHead"]


def task_events(stack: Stack, since: int, task_id: str, until: str) -> list[dict[str, Any]]:
    """The task's events (and its runs') on the SSE feed after `since`, up to `until` of the task."""
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{stack.stream_url}{FEED}?since_seq={since}", timeout=30, headers=stack.auth) as response:
        for frame in sse_events(response):
            payload = frame["data"]["payload"]
            if payload.get("task_id") == task_id:
                seen.append({"type": frame["event"], "seq": frame["id"], **payload})
                if frame["event"] == until:
                    return seen
    raise AssertionError(f"the feed ended before {until} of {task_id}")


def test_a_syntax_error_heals_on_the_second_attempt_and_both_attempts_are_paid_for(
    stack: Stack, api: httpx.Client
) -> None:
    description = unique("Validate the user")
    fixed = "def register(user):\n    if not user:\n        raise ValueError('no user')\n    return user\n"
    script_model(
        stack,
        {
            "match": first_turn_of(description),
            "tool_calls": write_and_finish("src/register.py", "def register(user:\n    return user\n", "done"),
        },
        {"match": first_turn_of(description), "tool_calls": write_and_finish("src/register.py", fixed, "fixed")},
    )
    since = log_head(stack)

    (task_id,) = submit(api, task_request(description))
    task = wait_for(api, task_id, lambda t: in_review_and_charged(t) and t["cost"]["inputTokens"] == 3000)

    codegen = task["subtasks"][0]["id"]
    result = task["results"][codegen]
    assert result["success"] is True
    assert result["output"]["files"] == {"src/register.py": fixed}
    assert result["output"]["summary"] == "fixed"
    # Two attempts, two model calls, both charged to the subtask and the task.
    assert result["cost"]["inputTokens"] == 2000
    assert result["cost"]["estimatedCostUsd"] == pytest.approx(2 * USD_PER_CALL)
    assert task["cost"]["estimatedCostUsd"] == pytest.approx(3 * USD_PER_CALL)  # + the test subtask's one call

    events = task_events(stack, since, task_id, until="task.review_requested")
    failed = [e for e in events if e["type"] == "run.failed"]
    assert len(failed) == 1
    assert failed[0]["attempt"] == 1 and failed[0]["retryable"] is True
    assert "src/register.py:1: SyntaxError" in failed[0]["error"]
    retry = [e for e in events if e["type"] == "task.subtask_dispatched" and e["attempt"] == 2]
    assert len(retry) == 1
    assert "SyntaxError" in retry[0]["previous_error"]
    # The retry starts from the failed attempt's file, which the feed names by digest.
    carried = retry[0]["previous_output"]["files"]["src/register.py"]
    files = f"{stack.gateway_url}/api/v1/workspaces/default/orchestration/files/{carried['digest']}"
    assert api.get(files).json()["content"] == "def register(user:\n    return user\n"
    # The second attempt was told why: its first message carries the checks' report.
    first_call, second_call = model_calls(stack, first_turn_of(description))
    assert "This is attempt 2" not in json.dumps(first_call["request"])
    assert "This is attempt 2" in json.dumps(second_call["request"])
    assert "SyntaxError" in json.dumps(second_call["request"])
    tool_calls = [e for e in events if e["type"] == "run.tool_called"]
    assert [t["tool"] for t in tool_calls][:2] == ["write_file", "finish"]
    assert all(t["status"] == "ok" and t["duration_ms"] >= 0 for t in tool_calls)
    called = [e for e in events if e["type"] == "run.model_called"]
    assert len(called) == 3 and all(m["status"] == "ok" for m in called)


def test_a_task_whose_attempts_all_fail_the_checks_fails_with_the_last_error(api: httpx.Client, stack: Stack) -> None:
    description = unique("Break it")
    broken = write_and_finish("config.json", "{not json", "wrote config")
    script_model(stack, *({"match": first_turn_of(description), "tool_calls": broken} for _ in range(2)))

    (task_id,) = submit(api, task_request(description, config={"maxRetries": 1}))
    task = wait_for(api, task_id, status_is("failed"))

    codegen = task["subtasks"][0]["id"]
    assert "retries exhausted" in task["error"] and "config.json: not valid JSON" in task["error"]
    assert task["results"][codegen]["success"] is False
    assert len(model_calls(stack, first_turn_of(description))) == 2


def test_a_rate_limit_is_retried_and_the_run_succeeds(api: httpx.Client, stack: Stack) -> None:
    description = unique("Survive a 429")
    script_model(stack, {"match": first_turn_of(description), "status": 429, "headers": {"retry-after": "0"}})

    (task_id,) = submit(api, task_request(description))
    task = wait_for(api, task_id, in_review_and_charged)

    assert all(r["success"] for r in task["results"].values())
    assert len(model_calls(stack, first_turn_of(description))) == 2, "one 429, then the answer"


def test_a_bad_key_fails_the_task_at_once_with_a_clear_error(api: httpx.Client, stack: Stack) -> None:
    description = unique("Use a revoked key")
    script_model(stack, {"match": first_turn_of(description), "status": 401})

    (task_id,) = submit(api, task_request(description))
    task = wait_for(api, task_id, status_is("failed"))

    assert "anthropic returned HTTP 401 (authentication failed: check the API key)" in task["error"]
    assert "not retryable" in task["error"]
    assert len(model_calls(stack, first_turn_of(description))) == 1, "no retry can fix a bad key"


def test_a_chained_task_waits_for_its_parent_and_starts_from_its_files(api: httpx.Client) -> None:
    (parent_id,) = submit(api, task_request(unique("Parent change")))
    (child_id,) = submit(api, task_request(unique("Child change"), parentTaskId=parent_id))

    parent = wait_for(api, parent_id, in_review_and_charged)
    assert api.get(f"/tasks/{child_id}").json()["task"]["status"] == "pending", "the child waits for its parent"
    parent_file = parent["results"][parent["subtasks"][1]["id"]]["output"]["files"]["src/register.py"]
    assert parent_file != ORIGINAL

    assert api.post(f"/tasks/{parent_id}/review", json={"taskId": parent_id, "decision": "approve"}).status_code == 200
    wait_for(api, parent_id, status_is("completed"))
    child = wait_for(api, child_id, in_review_and_charged)

    # The local model appends one line to the file it is given: the child's codegen got the
    # parent's version of the file, not the one in its own request.
    child_file = child["results"][child["subtasks"][0]["id"]]["output"]["files"]["src/register.py"]
    assert child_file.startswith(parent_file.rstrip("\n"))
    assert child_file.count("reviewed by the local model") == parent_file.count("reviewed by the local model") + 1


def test_a_child_of_a_rejected_parent_is_cancelled_with_the_reason(api: httpx.Client) -> None:
    (parent_id,) = submit(api, task_request(unique("Parent to reject")))
    (child_id,) = submit(api, task_request(unique("Orphan"), parentTaskId=parent_id))
    wait_for(api, parent_id, in_review_and_charged)

    body = {"taskId": parent_id, "decision": "reject", "feedback": "wrong approach"}
    assert api.post(f"/tasks/{parent_id}/review", json=body).status_code == 200
    child = wait_for(api, child_id, status_is("cancelled"))

    assert child["error"] == f"parent task {parent_id} failed: wrong approach"
    # A child submitted after its parent ended is settled at once.
    (late_id,) = submit(api, task_request(unique("Too late"), parentTaskId=parent_id))
    assert wait_for(api, late_id, status_is("cancelled"))["error"] == child["error"]


def test_an_unknown_parent_is_refused_and_nothing_is_created(api: httpx.Client) -> None:
    missing = str(uuid.uuid4())
    response = api.post("/tasks", json={"tasks": [task_request(unique("Lost child"), parentTaskId=missing)]})

    assert response.status_code == 400
    assert response.json() == {
        "error": "unknown_parent_task",
        "message": f"parentTaskId '{missing}' is not a known task",
    }


def plan_call(*subtasks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "submit_plan", "arguments": {"subtasks": list(subtasks)}}]


def step(given: str, agent: str, description: str, *deps: str) -> dict[str, Any]:
    return {"id": given, "agentType": agent, "description": description, "dependencies": list(deps)}


def test_a_drafted_plan_runs_independent_subtasks_in_parallel_and_its_cost_is_counted(
    stack: Stack, api: httpx.Client
) -> None:
    description = unique("Add an endpoint and its docs")
    drafted = plan_call(
        step("api", "codegen", "Add the endpoint"),
        step("docs", "codegen", "Document the endpoint"),
        step("check", "review", "Review both changes", "api", "docs"),
    )
    script_model(stack, {"match": f"Task (codegen): {description}", "tool_calls": drafted})
    since = log_head(stack)

    (task_id,) = submit(api, task_request(description, config={"planner": "llm"}))
    task = wait_for(api, task_id, lambda t: in_review_and_charged(t) and t["cost"]["inputTokens"] == 4000)

    assert task["plan"] == {"source": "llm"}
    first, second, review = task["subtasks"]
    assert [s["agentType"] for s in task["subtasks"]] == ["codegen", "codegen", "review"]
    assert [s["description"] for s in task["subtasks"]] == [
        "Add the endpoint",
        "Document the endpoint",
        "Review both changes",
    ]
    assert first["dependencies"] == [] and second["dependencies"] == []
    assert review["dependencies"] == [first["id"], second["id"]]
    # One drafting call and three runs, each 1,000 tokens in: all four charged to the task.
    assert task["cost"]["estimatedCostUsd"] == pytest.approx(4 * USD_PER_CALL)

    events = task_events(stack, since, task_id, until="task.review_requested")
    kinds = [(e["type"], e.get("subtask_id")) for e in events if e["type"].startswith("task.subtask_")]
    # Both independent subtasks were dispatched together, before either had finished.
    assert kinds[:2] == [("task.subtask_dispatched", first["id"]), ("task.subtask_dispatched", second["id"])]


def test_an_invalid_drafted_plan_falls_back_to_the_template_and_says_why(api: httpx.Client, stack: Stack) -> None:
    description = unique("Plan in circles")
    cycle = plan_call(step("a", "codegen", "One", "b"), step("b", "test", "Two", "a"))
    script_model(stack, {"match": f"Task (codegen): {description}", "tool_calls": cycle})

    (task_id,) = submit(api, task_request(description, config={"planner": "llm"}))
    task = wait_for(api, task_id, in_review_and_charged)

    assert task["plan"]["source"] == "template"
    assert "dependency cycle" in task["plan"]["fallbackReason"]
    assert [s["agentType"] for s in task["subtasks"]] == ["codegen", "test"], "the codegen template"


def test_revising_a_chained_task_starts_the_revision_from_the_parents_files(api: httpx.Client) -> None:
    (parent_id,) = submit(api, task_request(unique("Parent for a revision")))
    (child_id,) = submit(api, task_request(unique("Child to revise"), parentTaskId=parent_id))
    parent = wait_for(api, parent_id, in_review_and_charged)
    assert api.post(f"/tasks/{parent_id}/review", json={"taskId": parent_id, "decision": "approve"}).status_code == 200
    wait_for(api, child_id, in_review_and_charged)

    body = {"taskId": child_id, "decision": "revise", "feedback": "also log it"}
    assert api.post(f"/tasks/{child_id}/review", json=body).status_code == 200
    revision_id = wait_for(api, child_id, lambda t: "revisedBy" in t)["revisedBy"]
    revision = wait_for(api, revision_id, in_review_and_charged)

    parent_file = parent["results"][parent["subtasks"][1]["id"]]["output"]["files"]["src/register.py"]
    assert revision["request"]["repo"]["files"]["src/register.py"] == parent_file
    assert revision["request"]["parentTaskId"] is None


def test_many_children_submitted_at_once_to_one_parent_are_all_accepted(api: httpx.Client) -> None:
    (parent_id,) = submit(api, task_request(unique("Busy parent")))

    def child(i: int) -> httpx.Response:
        body = {"tasks": [task_request(unique(f"Sibling {i}"), parentTaskId=parent_id)]}
        return api.post("/tasks", json=body)

    with ThreadPoolExecutor(max_workers=6) as pool:
        responses = list(pool.map(child, range(6)))

    assert [r.status_code for r in responses] == [201] * 6, [r.text for r in responses]
    children = [r.json()["taskIds"][0] for r in responses]
    wait_for(api, parent_id, in_review_and_charged)
    assert {api.get(f"/tasks/{c}").json()["task"]["status"] for c in children} == {"pending"}
