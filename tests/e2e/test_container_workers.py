"""Container workers (spec 003, a task on the `fly` runner) through HTTP on the running system:
each run gets a machine of its own on the local Fly server, which really starts the product's
worker as a process; the worker claims its run, does it on the local model server with the
workspace's own key, completes it and calls back; the machine is then destroyed. The callback
sent again changes nothing, a different one is refused, and none of the run's secrets shows
anywhere the user can read."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.conftest import CLAIM_WINDOW_S
from tests.e2e.helpers import bearer, debug_dump, model_calls, new_workspace, script_model, submit, wait_for
from tests.factories import task_request

pytestmark = pytest.mark.e2e

FLY = {"runner": "fly", "maxRetries": 0}
IMAGE = "registry.fly.io/acme-workers:v1"


class Team:
    def __init__(self, stack: Stack, workspace: str, key: str, api: httpx.Client) -> None:
        self.stack, self.workspace, self.key, self.api = stack, workspace, key, api

    def dump(self) -> dict[str, Any]:
        return debug_dump(self.stack, self.workspace, bearer(self.key))

    def machine_events(self, task_id: str) -> list[dict[str, Any]]:
        """The events of the task's machines (the team's workspace has no other task)."""
        events = [e for e in self.dump()["events"] if e["type"].startswith("worker_machine.")]
        mine = {e["aggregateId"] for e in events if e["payload"].get("task_id") == task_id}
        return [e for e in events if e["aggregateId"] in mine]


@pytest.fixture
def team(stack: Stack) -> Iterator[Team]:
    created = new_workspace(stack, "containers")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as api:
        yield Team(stack, created["workspaceId"], created["apiKey"], api)


def fly_app(stack: Stack) -> tuple[str, str]:
    """A new app of the local Fly server, and a token of the test's own that reaches it."""
    token = f"FlyV1 fm2_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    registered = stack.local_fly("/_apps", {"app": f"workers-{uuid.uuid4().hex[:8]}", "token": token})
    return registered["app"], token


def provider_key() -> str:
    return f"sk-ant-api03-{uuid.uuid4().hex}{uuid.uuid4().hex}Kc9z"


def machines_of(stack: Stack, app: str, token: str, run_id: str) -> list[dict[str, Any]]:
    """The run's machines as Fly lists them to the app's owner, destroyed ones too."""
    listed = httpx.get(
        f"{stack.fly_url}/v1/apps/{app}/machines",
        params={"include_deleted": "true", "metadata.run_id": run_id},
        headers={"Authorization": token},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    return list(listed.json())


def until(what: str, check: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_fly_task_runs_in_a_machine_of_its_own_from_start_to_callback(stack: Stack, team: Team) -> None:
    app, fly_token = fly_app(stack)
    key = provider_key()
    assert team.api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}}).status_code == 200
    fly = {"apiToken": fly_token, "app": app, "region": "ams", "image": IMAGE, "size": "shared-cpu-1x"}
    assert team.api.put("/api/config/fly", json=fly).status_code == 200

    (task_id,) = submit(team.api, task_request("Validate in a container", config=FLY))
    task = wait_for(team.api, task_id, lambda t: t["status"] in ("review", "failed"), timeout=120)

    assert task["status"] == "review", task
    assert sorted(r["agentType"] for r in task["results"].values()) == ["codegen", "test"]
    assert all(r["success"] for r in task["results"].values()) and task["results"]
    (call,) = model_calls(stack, "Task: Validate in a container")
    assert call["key_last4"] == "Kc9z", "the container called the model with the workspace's own key"
    runs = {r["runId"]: r for r in team.dump()["runs"] if r["taskId"] == task_id}
    assert len(runs) == 2 and all(r["status"] == "succeeded" for r in runs.values())

    # A machine of its own for each run, in the workspace's app; each destroyed once its worker reported.
    by_machine = until("both machines destroyed", lambda: destroyed_machines(team, task_id, 2))
    for events in by_machine.values():
        started, reported, destroyed = events
        run = runs[started["payload"]["run_id"]]
        assert started["payload"]["session_id"] == run["sessionId"], "the machine's session claimed its run"
        assert reported["payload"]["status"] == "succeeded"
        assert reported["payload"]["metadata"]["machineId"] == started["payload"]["machine_id"]
        assert destroyed["payload"]["reason"] in ("reported", "run_ended")
        (machine,) = machines_of(stack, app, fly_token, run["runId"])
        assert machine["id"] == started["payload"]["machine_id"] and machine["name"] == f"run-{run['runId']}"
        assert machine["region"] == "ams" and machine["config"]["image"] == IMAGE
        until("its process gone", lambda m=machine: machine_state(stack, m["id"]) == ("destroyed", False))
    started, reported, _ = next(iter(by_machine.values()))
    run_id = started["payload"]["run_id"]
    (machine,) = machines_of(stack, app, fly_token, run_id)

    # The same callback again changes nothing; a different one is refused; a wrong token, 401.
    env = machine["config"]["env"]
    callback = env["ORCHESTRATOR_CALLBACK_URL"]
    assert callback == f"{stack.public_url}/api/callbacks/complete"
    sent = reported["payload"]
    same = {"taskId": task_id, "runId": run_id, "status": "succeeded", "prUrl": sent["pr_url"]}
    same |= {"error": sent["error"], "metadata": sent["metadata"]}
    token = {"Authorization": f"Bearer {env['ORCHESTRATOR_CALLBACK_TOKEN']}"}
    again = httpx.post(callback, json=same, headers=token, timeout=10)
    assert again.status_code == 200 and again.json() == {"status": "unchanged", "taskId": task_id, "runId": run_id}
    other = httpx.post(callback, json={**same, "status": "failed", "error": "no"}, headers=token, timeout=10)
    assert other.status_code == 409 and other.json()["error"] == "report_conflict"
    forged = httpx.post(callback, json=same, headers={"Authorization": "Bearer forged"}, timeout=10)
    assert forged.status_code == 401 and set(forged.json()) == {"error", "message"}
    assert len(team.machine_events(task_id)) == 6, "refused callbacks record nothing"

    # None of the run's secrets is anywhere the user reads: responses, the feed, the dump.
    secrets = [key, fly_token, env["ORCHESTRATOR_CALLBACK_TOKEN"], env["ORCHESTRATOR_SESSION_TOKEN"]]
    readable = " ".join(
        [
            team.api.get(f"/tasks/{task_id}").text,
            team.api.get("/api/config/fly").text,
            team.api.get("/api/tasks/history").text,
            str(team.dump()),  # every event as the feed shows it
        ]
    )
    assert not [s for s in secrets if s in readable]
    assert "callback_token_hash" not in str(team.dump()), "the callback token's hash stays private too"


def destroyed_machines(team: Team, task_id: str, count: int) -> dict[str, list[dict[str, Any]]] | None:
    """The task's machines' events, by machine, once `count` machines were destroyed."""
    by_machine: dict[str, list[dict[str, Any]]] = {}
    for event in team.machine_events(task_id):
        by_machine.setdefault(event["aggregateId"], []).append(event)
    done = [events for events in by_machine.values() if events[-1]["type"] == "worker_machine.destroyed"]
    return by_machine if len(done) >= count else None


def machine_state(stack: Stack, machine_id: str) -> tuple[str, bool]:
    (found,) = [m for m in stack.local_fly("/_machines")["machines"] if m["id"] == machine_id]
    return found["state"], bool(found["running"])


def test_a_fly_task_of_a_workspace_without_fly_settings_fails_saying_what_to_set(stack: Stack, team: Team) -> None:
    key = provider_key()
    assert team.api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}}).status_code == 200

    (task_id,) = submit(team.api, task_request("Nowhere to run", config=FLY))
    task = wait_for(team.api, task_id, lambda t: t["status"] == "failed", timeout=30)

    assert "PUT /api/config/fly" in str(task), task
    assert not model_calls(stack, "Nowhere to run"), "nothing was spent"
    assert team.machine_events(task_id) == []


def test_a_fly_task_needs_the_workspaces_own_provider_key(stack: Stack, team: Team) -> None:
    app, fly_token = fly_app(stack)
    fly = {"apiToken": fly_token, "app": app, "region": "ams", "image": IMAGE}
    assert team.api.put("/api/config/fly", json=fly).status_code == 200

    (task_id,) = submit(team.api, task_request("No key of its own", config=FLY))
    task = wait_for(team.api, task_id, lambda t: t["status"] == "failed", timeout=30)

    assert "PUT /api/config/provider-credentials" in str(task), "the service's own key never goes into a machine"
    listed = httpx.get(
        f"{stack.fly_url}/v1/apps/{app}/machines",
        params={"include_deleted": "true"},
        headers={"Authorization": fly_token},
        timeout=10,
    )
    assert listed.json() == [], "no machine was started"
    assert team.machine_events(task_id) == []


def test_a_hung_workers_machine_is_destroyed_when_its_lease_expires(stack: Stack, team: Team) -> None:
    app, fly_token = fly_app(stack)
    key = provider_key()
    assert team.api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}}).status_code == 200
    fly = {"apiToken": fly_token, "app": app, "region": "ams", "image": IMAGE}
    assert team.api.put("/api/config/fly", json=fly).status_code == 200
    script_model(stack, {"match": "Hangs in its container", "delay_ms": 90_000})

    (task_id,) = submit(team.api, task_request("Hangs in its container", config=FLY))
    started = until("the machine working", lambda: team.machine_events(task_id))[0]["payload"]
    until("its model call", lambda: model_calls(stack, "Task: Hangs in its container"))
    (process,) = [m for m in stack.local_fly("/_machines")["machines"] if m["id"] == started["machine_id"]]
    os.kill(process["pid"], signal.SIGSTOP)  # hung: no heartbeat, no exit, no callback

    task = wait_for(team.api, task_id, lambda t: t["status"] == "failed", timeout=90)
    assert "lease expired" in str(task), task
    events = until("the machine destroyed", lambda: destroyed_machines(team, task_id, 1))
    (machine_events,) = events.values()
    assert [e["type"] for e in machine_events] == ["worker_machine.started", "worker_machine.destroyed"]
    assert machine_events[-1]["payload"]["reason"] == "run_ended"
    until("its process gone", lambda: machine_state(stack, started["machine_id"]) == ("destroyed", False))
    assert not pid_alive(process["pid"])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_machine_that_never_claims_its_run_is_destroyed_and_the_run_failed(stack: Stack, team: Team) -> None:
    app, fly_token = fly_app(stack)
    key = provider_key()
    assert team.api.put("/api/config/provider-credentials", json={"anthropic": {"apiKey": key}}).status_code == 200
    fly = {"apiToken": fly_token, "app": app, "region": "ams", "image": IMAGE}
    assert team.api.put("/api/config/fly", json=fly).status_code == 200

    (task_id,) = submit(team.api, task_request("Never claims", config=FLY))
    # Frozen as it starts, long before its worker could claim: a container stuck at its boot.
    process = until("its process", lambda: started_process(stack, app), timeout=30)
    os.kill(process["pid"], signal.SIGSTOP)

    task = wait_for(team.api, task_id, lambda t: t["status"] == "failed", timeout=CLAIM_WINDOW_S + 60)
    assert "did not claim the run in time" in str(task), task
    (machine_events,) = until("the machine destroyed", lambda: destroyed_machines(team, task_id, 1)).values()
    assert [e["payload"].get("reason") for e in machine_events] == [None, "not_claimed"]
    until("its process gone", lambda: machine_state(stack, process["id"]) == ("destroyed", False))
    assert not model_calls(stack, "Never claims"), "nothing was spent"


def started_process(stack: Stack, app: str) -> dict[str, Any] | None:
    """The app's one machine, once its process runs."""
    running = [m for m in stack.local_fly("/_machines")["machines"] if m["app"] == app and m["pid"]]
    return running[0] if running else None
