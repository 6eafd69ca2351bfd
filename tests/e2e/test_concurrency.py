"""A workspace's concurrency cap (`maxConcurrentSubtasks`): no more subtasks run at once than it
allows; the rest wait and start in the order they were ready."""

from __future__ import annotations

import uuid

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    in_review_and_charged,
    new_workspace,
    script_model,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_a_cap_of_one_runs_subtasks_one_at_a_time_in_order(stack: Stack) -> None:
    created = new_workspace(stack, "cap")
    workspace, key = created["workspaceId"], bearer(created["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as api:
        config = f"/api/v1/workspaces/{workspace}/orchestration/config"
        assert api.patch(config, json={"maxConcurrentSubtasks": 1}).status_code == 200
        ids = submit(api, *(task_request(f"capped {i}") for i in range(3)))
        tasks = [wait_for(api, task_id, in_review_and_charged) for task_id in ids]
        dump = debug_dump(stack, workspace, key)

    running, most, started = 0, 0, []
    for event in dump["events"]:
        if event["type"] == "run.started":
            running += 1
            most = max(most, running)
            started.append((event["payload"]["task_id"], event["payload"]["subtask_id"]))
        elif event["type"] in ("run.succeeded", "run.failed"):
            running -= 1
    assert most == 1, "never two runs at once"
    codegen = [(t["id"], t["subtasks"][0]["id"]) for t in tasks]
    tests = [(t["id"], t["subtasks"][1]["id"]) for t in tasks]
    assert started == codegen + tests, "in the order they became ready"
    assert sum(1 for e in dump["events"] if e["type"] == "task.subtask_queued") >= 4


def test_a_drafted_plans_first_subtasks_take_slots_too(stack: Stack) -> None:
    created = new_workspace(stack, "cap-plan")
    workspace, key = created["workspaceId"], bearer(created["apiKey"])
    description = f"Two at once {uuid.uuid4().hex[:8]}"
    steps = [
        {"id": "a", "agentType": "codegen", "description": "One side", "dependencies": []},
        {"id": "b", "agentType": "codegen", "description": "Other side", "dependencies": []},
    ]
    drafted = {
        "match": f"Task (codegen): {description}",
        "tool_calls": [{"name": "submit_plan", "arguments": {"subtasks": steps}}],
    }
    script_model(stack, drafted)
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as api:
        config = f"/api/v1/workspaces/{workspace}/orchestration/config"
        assert api.patch(config, json={"maxConcurrentSubtasks": 1, "planner": "llm"}).status_code == 200
        (task_id,) = submit(api, task_request(description))
        wait_for(api, task_id, in_review_and_charged)
        dump = debug_dump(stack, workspace, key)

    kinds = [e["type"] for e in dump["events"] if e["type"] in ("run.started", "run.succeeded")]
    assert kinds == ["run.started", "run.succeeded", "run.started", "run.succeeded"], "one at a time"
