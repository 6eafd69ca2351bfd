"""The worker (`orchestrator-worker`), run as a real process against the running system: it claims a
task's run as an agent session, runs the product's agent on the local model server, and completes
the run, which the task then shows with its files and cost; a run whose agent fails is failed; a
worker stopped mid-run gives its run back. What the user sees, over HTTP, and the worker's exit
code and log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from libs.modelserver.script import reviewed_content
from tests.e2e.helpers import bearer, debug_dump, model_calls, new_workspace, script_model, submit, wait_for
from tests.factories import task_request

pytestmark = pytest.mark.e2e

EXTERNAL = {"agentRuntime": "external", "maxRetries": 0}
ORIGINAL = "def register(user):\n    return user\n"  # tests.factories' file
WORKER_KEY = "worker-provider-key-WK42"
WORKER = Path(sys.executable).with_name("orchestrator-worker")


class Team:
    def __init__(self, stack: Stack, workspace: str, key: str, api: httpx.Client) -> None:
        self.stack, self.workspace, self.key, self.api = stack, workspace, key, api

    def session(self, name: str = "worker") -> str:
        url = f"{self.stack.runtime_url}/api/v1/workspaces/{self.workspace}/agent-sessions"
        made = httpx.post(url, json={"name": name}, headers=bearer(self.key), timeout=10)
        assert made.status_code == 201, made.text
        return str(made.json()["token"])


@pytest.fixture
def team(stack: Stack) -> Iterator[Team]:
    created = new_workspace(stack, "worker")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as api:
        yield Team(stack, created["workspaceId"], created["apiKey"], api)


def worker_env(stack: Stack, token: str, **settings: str) -> dict[str, str]:
    """The worker's environment as a machine is given it: the agent API, the session, the model."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ORCHESTRATOR_", "ANTHROPIC_", "OPENAI_")) and k != "FLY_MACHINE_ID"
    }
    return {
        **inherited,
        "ORCHESTRATOR_AGENT_URL": stack.runtime_url,
        "ORCHESTRATOR_SESSION_TOKEN": token,
        "ANTHROPIC_BASE_URL": stack.model_server_url,
        "ANTHROPIC_API_KEY": WORKER_KEY,
        "ORCHESTRATOR_CLAIM_WAIT_SECONDS": "30",
        **settings,
    }


def run_worker(stack: Stack, token: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WORKER)],
        env=worker_env(stack, token, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=120,
    )


def assert_no_secret(log: str, token: str) -> None:
    secret = token.split("_", 2)[2]  # ags_<session id>_<secret>
    assert token not in log and secret not in log, "the session token is never logged"
    assert WORKER_KEY not in log and "clm_" not in log, "nor the provider key, nor the claim token"


def claim(stack: Stack, token: str) -> dict[str, Any]:
    response = httpx.post(
        f"{stack.runtime_url}/api/agent/tasks/claim-next", json={"wait_seconds": 10}, headers=bearer(token), timeout=30
    )
    assert response.status_code == 200, response.text
    return dict(response.json()["claim"])


def test_the_worker_claims_a_run_works_it_and_the_task_shows_its_files_and_its_cost(stack: Stack, team: Team) -> None:
    token = team.session("machine")
    (task_id,) = submit(team.api, task_request("Validate with the worker", config=EXTERNAL))
    # The model answers after longer than the lease: only the worker's heartbeats keep its run.
    script_model(stack, {"match": "Validate with the worker", "delay_ms": 3000})

    done = run_worker(stack, token, ORCHESTRATOR_LEASE_TTL_SECONDS="2")

    assert done.returncode == 0, done.stdout
    task = wait_for(
        team.api, task_id, lambda t: any(r["cost"]["subrequests"] > 0 for r in t["results"].values()), timeout=30
    )
    (codegen,) = task["results"].values()
    assert codegen["agentType"] == "codegen" and codegen["success"] and "attempts" not in codegen  # the first
    written = reviewed_content("src/register.py", ORIGINAL)
    assert codegen["output"]["files"] == {"src/register.py": written}
    assert codegen["output"]["summary"] == "Generated 1 file(s)"
    # The call went out from the worker, with its own key, to the model the task asked for.
    (call,) = model_calls(stack, "Validate with the worker")
    assert call["key_last4"] == "WK42" and call["model"] == "claude-sonnet-4-20250514"
    # Charged as the executor's runs are: one call, 1,000 tokens in and 200 out.
    costs = team.api.get("/costs").json()
    (charged,) = [c["cost"] for c in costs["tasks"] if c["taskId"] == task_id]
    assert (charged["inputTokens"], charged["outputTokens"]) == (1000, 200) and charged["estimatedCostUsd"] > 0
    runs = [r for r in debug_dump(stack, team.workspace, bearer(team.key))["runs"] if r["taskId"] == task_id]
    assert [(r["status"], r["attempt"]) for r in runs if r["agentType"] == "codegen"] == [("succeeded", 1)]
    # Its log: a line per model call and per tool call, and no secret.
    log = done.stdout
    assert "model call 1 in" in log and "write_file ok" in log and "finish ok" in log
    assert "completed: 1 file(s) changed" in log
    assert written not in log, "no file's content is logged"
    assert_no_secret(log, token)


def test_a_run_whose_agent_fails_is_failed_and_the_worker_exits_1(stack: Stack, team: Team) -> None:
    token = team.session("machine")
    (task_id,) = submit(team.api, task_request("Fail in the worker", config=EXTERNAL))
    script_model(stack, {"match": "Fail in the worker", "status": 401})  # a key the provider refuses

    done = run_worker(stack, token)

    assert done.returncode == 1, done.stdout
    deadline = time.monotonic() + 20
    while True:
        runs = [r for r in debug_dump(stack, team.workspace, bearer(team.key))["runs"] if r["taskId"] == task_id]
        if runs and runs[0]["status"] != "started":
            break
        assert time.monotonic() < deadline, runs
        time.sleep(0.1)
    (run,) = runs
    assert run["status"] == "failed" and "authentication failed" in run["error"]
    wait_for(team.api, task_id, lambda t: t["status"] == "failed", timeout=30)
    assert "model call 1 failed: anthropic returned HTTP 401" in done.stdout
    assert_no_secret(done.stdout, token)


def test_a_worker_stopped_mid_run_gives_the_run_back_and_exits_at_once(stack: Stack, team: Team) -> None:
    token = team.session("machine")
    (task_id,) = submit(team.api, task_request("Stop the worker", config=EXTERNAL))
    script_model(stack, {"match": "Stop the worker", "delay_ms": 30_000})
    worker = subprocess.Popen(
        [str(WORKER)], env=worker_env(stack, token), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # Its start imports both provider SDKs: seconds, and many more on a busy machine.
        deadline = time.monotonic() + 60
        while not model_calls(stack, "Stop the worker"):
            assert time.monotonic() < deadline and worker.poll() is None, "the worker never called the model"
            time.sleep(0.05)
        stopped_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        log = worker.communicate(timeout=30)[0]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()

    assert worker.returncode == 1 and time.monotonic() - stopped_at < 10, log  # not the model's 30 s
    assert "stopped; the run was released" in log
    # The same attempt, back in the queue at once (no lease to wait out), for whoever claims next.
    again = claim(stack, team.session("next"))
    assert again["task"]["id"] == task_id and again["run"]["attempt"] == 1
    assert again["run"]["metadata"]["handover"] == 1
    runs = [r for r in debug_dump(stack, team.workspace, bearer(team.key))["runs"] if r["taskId"] == task_id]
    assert [r["status"] for r in runs] == ["released", "started"]
    assert runs[0]["releaseReason"] == "the worker was stopped before the run ended"


def test_a_worker_with_nothing_to_claim_says_so_and_exits_1(stack: Stack, team: Team) -> None:
    started = time.monotonic()
    done = run_worker(stack, team.session("idle"), ORCHESTRATOR_CLAIM_WAIT_SECONDS="1")

    assert done.returncode == 1 and time.monotonic() - started < 60  # its start, then a second
    assert "a run could not be claimed within 1 s: nothing was ready" in done.stdout
