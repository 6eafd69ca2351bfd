"""Spec 003's stop through HTTP on the running stack: a running agent stops within a second of
the stop, mid model call; its lease is released; nothing more is charged after it; a subtask
queued for a slot is never dispatched; a finished task cannot be stopped."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    get_task,
    in_review_and_charged,
    model_calls,
    new_workspace,
    script_model,
    status_is,
    task_request,
    wait_for,
)
from tests.e2e.test_tasks_api import create, refused

pytestmark = pytest.mark.e2e

CANCELLED_RUN = "stopped: its task was cancelled"


@dataclass
class Team:
    stack: Stack
    workspace: str
    key: str
    api: httpx.Client

    def dump(self) -> dict[str, Any]:
        return debug_dump(self.stack, self.workspace, bearer(self.key))

    def events(self, task_id: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.dump()["events"] if e["type"] == kind and task_id in (e["aggregateId"], _task(e))]


def _task(event: dict[str, Any]) -> str | None:
    return event["payload"].get("task_id")


@pytest.fixture
def team(stack: Stack) -> Iterator[Team]:
    created = new_workspace(stack, "stop")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as api:
        yield Team(stack, created["workspaceId"], created["apiKey"], api)


def calling(stack: Stack, text: str) -> None:
    """Waits until the model server has the call (it answers it in 30 s: the call is in flight)."""
    deadline = time.monotonic() + 30
    while not model_calls(stack, text):
        assert time.monotonic() < deadline, f"no model call for {text!r}"
        time.sleep(0.05)


def eventually(read: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := read()):
        assert time.monotonic() < deadline, "it never happened"
        time.sleep(0.1)
    return found


def charges(stack: Stack, task_id: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT run_id::text, input_tokens, output_tokens, cost_usd, estimated FROM rm_charges "
            "WHERE task_id = %s ORDER BY seq",
            (task_id,),
        ).fetchall()


def lease(stack: Stack, run_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        return conn.execute("SELECT status, ended_at, error FROM rm_leases WHERE run_id = %s", (run_id,)).fetchone()


def test_a_running_agent_stops_within_a_second_its_lease_ends_and_nothing_more_is_charged(team: Team) -> None:
    stack, api = team.stack, team.api
    script_model(stack, {"match": "Stop me mid-call", "delay_ms": 30_000})
    (task_id,) = create(api, task_request("Stop me mid-call"))
    calling(stack, "Stop me mid-call")

    stopped = api.post(f"/api/tasks/{task_id}/stop")

    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert (body["id"], body["status"], body["error"]) == (task_id, "cancelled", "stopped on request")
    assert body["startedAt"] is not None and body["completedAt"] >= body["startedAt"]
    # The run ended as the executor heard of the stop, in the model call, not at its answer.
    (failed,) = eventually(lambda: team.events(task_id, "run.failed"))
    (cancelled,) = team.events(task_id, "task.cancelled")
    assert failed["payload"]["error"] == CANCELLED_RUN and failed["payload"]["retryable"] is False
    assert 0 <= failed["occurredAt"] - cancelled["occurredAt"] < 1000, "the agent stopped within a second"
    run_id = failed["aggregateId"]
    ended = eventually(lambda: lease(stack, run_id))
    assert ended[0] == "failed" and ended[1] == failed["occurredAt"] and ended[2] == CANCELLED_RUN
    # Its one call, in flight, is charged at its estimate (the provider may bill it); then nothing.
    (charge,) = eventually(lambda: charges(stack, task_id))
    assert charge[0] == run_id and charge[4] is True and charge[1] > 0
    time.sleep(2)
    assert charges(stack, task_id) == [charge], "nothing charged after the stop"
    assert len(model_calls(stack, "Stop me mid-call")) == 1, "no model call after the stop"
    assert len(team.events(task_id, "task.subtask_dispatched")) == 1, "the test subtask never ran"
    task = get_task(api, task_id)
    assert task["status"] == "cancelled" and task["cost"]["estimatedCostUsd"] == pytest.approx(charge[3])
    # Stopped once, it cannot be stopped again.
    message = refused(api.post(f"/api/tasks/{task_id}/stop"), 409, "invalid_state_transition")
    assert f"task {task_id} is 'cancelled'" in message


def configure(team: Team, **config: object) -> None:
    url = f"/api/v1/workspaces/{team.workspace}/orchestration/config"
    assert team.api.patch(url, json=config).status_code == 200


def test_a_stopped_tasks_subtask_queued_for_a_slot_is_never_dispatched(team: Team) -> None:
    stack, api = team.stack, team.api
    configure(team, maxConcurrentSubtasks=1)
    script_model(stack, {"match": "Hold the only slot", "delay_ms": 30_000})
    (holder,) = create(api, task_request("Hold the only slot"))
    calling(stack, "Hold the only slot")
    (waiting,) = create(api, task_request("Wait for the slot"))
    eventually(lambda: team.events(waiting, "task.subtask_queued"))

    assert api.post(f"/api/tasks/{waiting}/stop").json()["status"] == "cancelled"
    assert api.post(f"/api/tasks/{holder}/stop").json()["status"] == "cancelled"

    # The slot is free again, and the stopped task's queued subtask gave its place up.
    (after,) = create(api, task_request("After the stops"))
    wait_for(api, after, in_review_and_charged)
    assert team.events(waiting, "task.subtask_dispatched") == []
    assert model_calls(stack, "Wait for the slot") == []


def test_a_task_in_review_stops_and_a_completed_or_failed_one_does_not(team: Team) -> None:
    stack, api = team.stack, team.api
    script_model(stack, {"match": "Fail before the stop", "status": 400})
    in_review, completed, failed = create(
        api, task_request("Stop in review"), task_request("Complete first"), task_request("Fail before the stop")
    )
    for task_id in (in_review, completed):
        wait_for(api, task_id, in_review_and_charged)
    wait_for(api, failed, status_is("failed"))
    api.post(f"/tasks/{completed}/review", json={"taskId": completed, "decision": "approve"})
    wait_for(api, completed, status_is("completed"))

    assert api.post(f"/api/tasks/{in_review}/stop").json()["status"] == "cancelled"
    approval = api.post(f"/tasks/{in_review}/review", json={"taskId": in_review, "decision": "approve"})
    refused(approval, 400, "invalid_state_transition")
    for task_id, status in ((completed, "completed"), (failed, "failed")):
        history = api.get("/api/tasks/history", params={"taskId": task_id}).json()["transitions"]
        message = refused(api.post(f"/api/tasks/{task_id}/stop"), 409, "invalid_state_transition")
        assert f"is '{status}'" in message
        assert api.get("/api/tasks/history", params={"taskId": task_id}).json()["transitions"] == history
