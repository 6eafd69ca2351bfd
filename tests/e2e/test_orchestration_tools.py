"""Spec 004's agent steps with the repository tools, through HTTP, the local model server scripted:
`orch-code-change` runs on the files its body gives; the plan step is offered only its three
reading tools (its write is refused), the change step writes and deletes, and the run pauses at
the review with the changed files in its state, by digest, served by the files endpoint."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from libs.domain.orchestration_run import orchestration_run_id
from tests.e2e.helpers import bearer, model_calls, new_workspace, script_model, sse_events

pytestmark = pytest.mark.e2e

PATH = "/api/v1/orchestrations/{orch_id}/run"
READING = ["list_files", "read_file", "search", "finish"]
WRITING = ["list_files", "read_file", "search", "write_file", "delete_file", "finish"]


def _call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _offered(call: dict[str, Any]) -> list[str]:
    return [tool["name"] for tool in call["request"]["tools"]]


def _digest(content: str) -> str:
    return "sha256:" + hashlib.sha256(content.encode()).hexdigest()


def test_a_code_change_plans_with_the_reading_tools_changes_the_files_and_pauses_for_review(stack: Stack) -> None:
    workspace = new_workspace(stack, "orch-tools")
    auth = bearer(workspace["apiKey"])
    tag = uuid.uuid4().hex[:8]
    request = f"Greet the user by name ({tag})"
    app = f"def main():\n    return '{tag}'\n"
    files = {"src/app.py": app, "old.txt": f"obsolete {tag}\n"}
    greeting = f"def main(name):\n    return 'hello ' + name + ' {tag}'\n"
    planning, changing = f"without changing anything: {request}", f"Make this change: {request}"
    script_model(
        stack,
        {"match": planning, "tool_calls": [_call("write_file", path="src/app.py", content=f"hacked {tag}")]},
        {"match": planning, "tool_calls": [_call("finish", summary="Plan: main takes a name; old.txt goes")]},
        {
            "match": changing,
            "tool_calls": [
                _call("write_file", path="src/app.py", content=greeting),
                _call("delete_file", path="old.txt"),
                _call("finish", summary="main greets by name; old.txt deleted"),
            ],
        },
    )

    response = httpx.post(
        stack.gateway_url + PATH.format(orch_id="orch-code-change"),
        json={"message": request, "files": files},
        headers=auth,
        timeout=120,
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paused", body
    paused = body["human_input_required"]
    assert paused["step_id"] == "step-review"
    assert paused["agent_context"] == (
        "Plan:\nPlan: main takes a name; old.txt goes\n\nWhat changed:\nmain greets by name; old.txt deleted\n"
    )

    # The plan step: offered its three tools and finish, told of no other, shown the run's files;
    # its write was refused, and the refusal went back to the model.
    first_plan, second_plan = model_calls(stack, planning)
    assert _offered(first_plan) == _offered(second_plan) == READING
    assert "write_file" not in json.dumps(first_plan["request"]["system"])
    assert f"--- FILE: src/app.py ---\n{app}" in first_plan["request"]["messages"][0]["content"]
    assert "error: there is no tool 'write_file' here; the tools are: list_files, read_file, search, finish" in (
        json.dumps(second_plan["request"]["messages"])
    )
    # The change step: the writing tools too, and the files as the run started (the refused
    # write changed nothing).
    (change,) = model_calls(stack, changing)
    assert _offered(change) == WRITING
    assert f"--- FILE: src/app.py ---\n{app}" in change["request"]["messages"][0]["content"]

    # The run's state: the files key names the changed files by digest, the deleted one gone.
    run_uuid = orchestration_run_id(body["run_id"])
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT shared_state FROM rm_orchestration_runs WHERE id = %s", (run_uuid,)).fetchone()
    assert row is not None
    state = row[0]
    assert state["files"] == {"src/app.py": {"digest": _digest(greeting), "size": len(greeting.encode())}}
    assert (state["request"], state["summary"]) == (request, "main greets by name; old.txt deleted")
    served = httpx.get(
        f"{stack.gateway_url}/api/v1/workspaces/{workspace['workspaceId']}/orchestration/files/{_digest(greeting)}",
        headers=auth,
        timeout=10,
    )
    assert served.status_code == 200, served.text
    assert served.json()["content"] == greeting

    # The run's events name its files by digest and never copy them.
    frames = _run_events(stack, workspace["workspaceId"], auth)
    (completed,) = [
        f
        for f in frames
        if f["type"] == "orchestration_run.step_completed" and f["payload"]["step_id"] == "step-change"
    ]
    assert completed["payload"]["files_key"] == "files"
    assert completed["payload"]["changes"] == {
        "files": {"src/app.py": {"digest": _digest(greeting), "size": len(greeting.encode())}},
        "deleted": ["old.txt"],
    }
    shown = json.dumps(frames)
    assert json.dumps(greeting)[1:-1] not in shown and json.dumps(app)[1:-1] not in shown

    # Approved, the run completes, and its answer shows the files as they are now, by content.
    resumed = httpx.post(
        f"{stack.gateway_url}/api/v1/orchestrations/runs/{body['run_id']}/resume",
        json={"response": {"decision": "approve"}},
        headers=auth,
        timeout=120,
    )
    assert resumed.status_code == 200, resumed.text
    final = resumed.json()
    assert final["status"] == "completed", final
    assert final["shared_state"]["files"] == {"src/app.py": greeting}


def _run_events(stack: Stack, workspace: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    """The workspace's feed from the start, up to the run's pause."""
    url = f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/events?since_seq=0"
    frames: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=auth, timeout=30) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            frames.append(frame["data"])
            if frame["event"] == "orchestration_run.paused":
                break
    return frames


def test_files_for_an_orchestration_without_a_files_key_or_with_a_bad_path_are_400(stack: Stack) -> None:
    research = httpx.post(
        stack.gateway_url + PATH.format(orch_id="orch-research-report"),
        json={"message": "owls", "files": {"a.py": "A"}},
        headers=stack.auth,
        timeout=30,
    )
    assert research.status_code == 400, research.text
    assert research.json() == {
        "error": "invalid_request",
        "message": "orchestration orch-research-report has no state key of type files: it takes no files",
    }
    climbing = httpx.post(
        stack.gateway_url + PATH.format(orch_id="orch-code-change"),
        json={"message": "owls", "files": {"../a.py": "A"}},
        headers=stack.auth,
        timeout=30,
    )
    assert climbing.status_code == 400, climbing.text
    assert "../a.py" in climbing.json()["message"]
