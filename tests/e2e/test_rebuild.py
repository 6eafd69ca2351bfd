"""Invariant 1: dropping every read model and replaying the log rebuilds them byte for byte."""

from __future__ import annotations

import httpx
import pytest

from libs.devstack.stack import Stack
from libs.readmodels.schema import TABLES
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    in_review_and_charged,
    live_and_rebuilt,
    new_workspace,
    rebuild_read_models,
    script_model,
    status_is,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e


def test_rebuilding_the_read_models_from_the_log_gives_the_live_ones(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        approved, rejected, revised, pending = submit(api, *(task_request(f"task {i}") for i in range(4)))
        for task_id in (approved, rejected, revised, pending):
            wait_for(api, task_id, in_review_and_charged)
        api.post(f"/tasks/{approved}/review", json={"taskId": approved, "decision": "approve"})
        api.post(f"/tasks/{rejected}/review", json={"taskId": rejected, "decision": "reject", "feedback": "no"})
        api.post(f"/tasks/{revised}/review", json={"taskId": revised, "decision": "revise", "feedback": "more"})
        wait_for(api, approved, status_is("completed"))
        revision = wait_for(api, revised, lambda t: "revisedBy" in t)["revisedBy"]
        wait_for(api, revision, in_review_and_charged)
        # The rejected task retried, and its retry stopped in review (spec 003): both replay too.
        wait_for(api, rejected, status_is("failed"))
        retried = api.post(f"/api/tasks/{rejected}/retry")
        assert retried.status_code == 201, retried.text
        wait_for(api, retried.json()["id"], in_review_and_charged)
        assert api.post(f"/api/tasks/{retried.json()['id']}/stop").status_code == 200
    _talk(stack, "default", stack.auth, pending)
    # A capped workspace: its Schedule's events and queued subtasks are in the log too.
    capped = new_workspace(stack, "rebuild-cap")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(capped["apiKey"])) as api:
        config = f"/api/v1/workspaces/{capped['workspaceId']}/orchestration/config"
        assert api.patch(config, json={"maxConcurrentSubtasks": 1}).status_code == 200
        for task_id in submit(api, task_request("capped one"), task_request("capped two")):
            wait_for(api, task_id, in_review_and_charged)
    dump = debug_dump(stack, capped["workspaceId"], bearer(capped["apiKey"]))
    kinds = {event["type"] for event in dump["events"]}
    assert {"schedule.opened", "schedule.queued", "schedule.started", "task.subtask_queued"} <= kinds
    # A purged workspace: its purge, and what the purged task's runs recorded after it, replay too.
    purged = new_workspace(stack, "rebuild-purge")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(purged["apiKey"])) as api:
        (task_id,) = submit(api, task_request("purged in review"))
        wait_for(api, task_id, in_review_and_charged)
        _talk(stack, purged["workspaceId"], bearer(purged["apiKey"]), task_id)
        assert api.post(f"/api/v1/workspaces/{purged['workspaceId']}/orchestration/purge").status_code == 200
    # Agent sessions: one made, its child spawned, both stopped by the parent's stop.
    sessions = f"{stack.runtime_url}/api/v1/workspaces/default/agent-sessions"
    made = httpx.post(sessions, json={"name": "rebuild"}, headers=stack.auth, timeout=30).json()
    child = httpx.post(f"{stack.runtime_url}/api/agent/spawn", json={}, headers=bearer(made["token"]), timeout=30)
    assert child.status_code == 201, child.text
    assert httpx.delete(f"{sessions}/{made['session']['id']}", headers=stack.auth, timeout=30).status_code == 200
    # An orchestration run sent back once at its gate, then approved to its end: its state and
    # step_history rebuilt equal the live ones.
    topic = "rebuilt orchestration"
    finish = [{"name": "finish", "arguments": {"summary": "found"}}]
    script_model(
        stack,
        {"match": f"each with its source: {topic}", "tool_calls": finish},
        *[{"match": f'Write a report in Markdown on "{topic}"', "tool_calls": finish}] * 2,
        {"match": "Finish this approved article", "tool_calls": finish},
    )
    orchestrations = f"{stack.gateway_url}/api/v1/orchestrations"
    run = httpx.post(
        f"{orchestrations}/orch-research-report/run", json={"message": topic}, headers=stack.auth, timeout=60
    )
    assert run.json()["status"] == "paused", run.text
    resume = f"{orchestrations}/runs/{run.json()['run_id']}/resume"
    for decision, status in (("reject", "paused"), ("approve", "completed")):
        resumed = httpx.post(resume, json={"response": {"decision": decision}}, headers=stack.auth, timeout=60)
        assert resumed.json()["status"] == status, resumed.text
    live, rebuilt = live_and_rebuilt(stack)
    # rm_run_usage holds only runs not charged yet and rm_run_queue only runs nobody claimed,
    # which a quiet system may have none of, and these agents ask no questions (the projector's
    # and the leases' integration tests rebuild those tables from scenarios that have them;
    # this one must not depend on which tests ran before it). rm_worker_machines holds only
    # containers at work (the projector's integration test rebuilds one).
    empty_when_quiet = ("rm_run_usage", "rm_questions", "rm_run_queue", "rm_worker_machines")
    assert [t for t in TABLES if t not in empty_when_quiet and not live[t]] == []
    assert rebuilt == live


def _talk(stack: Stack, workspace: str, key: dict[str, str], task_id: str) -> None:
    """A session of the workspace asks on the task's coordination channel and answers itself."""
    sessions = f"{stack.runtime_url}/api/v1/workspaces/{workspace}/agent-sessions"
    made = httpx.post(sessions, json={"name": "talker"}, headers=key, timeout=10)
    assert made.status_code == 201, made.text
    channels = f"{stack.runtime_url}/api/agent/channels"
    with httpx.Client(base_url=channels, headers=bearer(made.json()["token"]), timeout=10) as agent:
        asked = agent.post(f"/task_{task_id}/send", json={"body": "done?", "metadata": {"message_kind": "question"}})
        assert asked.status_code == 201, asked.text
        to = asked.json()["message"]["message_id"]
        answer = {"body": "yes", "metadata": {"message_kind": "answer"}, "reply_to_message_id": to}
        assert agent.post("/reply", json=answer).status_code == 201


def test_rebuild_refuses_while_a_projector_runs(stack: Stack) -> None:
    result = rebuild_read_models(stack)
    assert result.returncode != 0
    assert "stop the stream service first" in result.stderr
