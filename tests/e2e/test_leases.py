"""Leases (spec 002, issue 16): an agent session works the queue over HTTP exactly as the
executor does. A plain HTTP client claims a run under a fenced lease, heartbeats, and completes
it with files and usage; the task goes on through the same checks, pricing and planner. A lease
nobody heartbeats expires and its run is queued again, once; a late holder is refused. HTTP only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    executor_restored,
    model_calls,
    new_workspace,
    script_model,
    status_is,
    stop_idle_executor,
    submit,
    wait_for,
)
from tests.e2e.test_agent_sessions import assert_diagnostic
from tests.factories import task_request

pytestmark = pytest.mark.e2e

EXTERNAL = {"agentRuntime": "external", "maxRetries": 2}
MODEL = "claude-sonnet-4-20250514"  # $3 / $15 per million tokens
USAGE = {"model": MODEL, "input_tokens": 2000, "output_tokens": 400, "calls": 3}
USD = (2000 * 3.0 + 400 * 15.0) / 1_000_000
VALIDATED = "def register(user):\n    if not user.get('email'):\n        raise ValueError('email')\n    return user\n"


class Team:
    def __init__(self, stack: Stack, workspace: str, key: str, api: httpx.Client) -> None:
        self.stack, self.workspace, self.key, self.api = stack, workspace, key, api

    def session(self, name: str = "worker", **body: Any) -> str:
        url = f"{self.stack.runtime_url}/api/v1/workspaces/{self.workspace}/agent-sessions"
        made = httpx.post(url, json={"name": name, **body}, headers=bearer(self.key), timeout=10)
        assert made.status_code == 201, made.text
        return str(made.json()["token"])


@pytest.fixture
def team(stack: Stack) -> Iterator[Team]:
    created = new_workspace(stack, "leases")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as api:
        yield Team(stack, created["workspaceId"], created["apiKey"], api)


def agent_call(stack: Stack, token: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(f"{stack.runtime_url}/api/agent/{path}", json=body or {}, headers=bearer(token), timeout=30)


def claim(stack: Stack, token: str, **body: Any) -> dict[str, Any] | None:
    response = agent_call(stack, token, "tasks/claim-next", {"wait_seconds": 10, **body})
    if response.status_code == 204:
        return None
    assert response.status_code == 200, response.text
    return dict(response.json()["claim"])


def under_lease(stack: Stack, token: str, claimed: dict[str, Any], verb: str, **body: Any) -> httpx.Response:
    run_id = claimed["run"]["id"]
    return agent_call(stack, token, f"tasks/{run_id}/{verb}", {"claim_token": claimed["claim_token"], **body})


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_an_agent_session_claims_heartbeats_and_completes_and_the_task_reaches_review_with_its_cost(
    stack: Stack, team: Team
) -> None:
    token = team.session("outside", capabilities=["codegen", "test"])
    (task_id,) = submit(team.api, task_request("Validate the email", config=EXTERNAL))

    first = claim(stack, token, lease_ttl_seconds=30)
    assert first is not None
    assert first["task"]["id"] == task_id and first["task"]["workspace_id"] == team.workspace
    assert first["run"]["status"] == first["lease"]["status"] == "claimed"
    assert first["run"]["attempt"] == 1 and first["input"]["agent_type"] == "codegen"
    assert first["input"]["description"] == "Validate the email"
    assert first["lease"]["claim_token_hash"] and first["claim_token"] not in str(first["lease"])
    assert first["coordination_channel"]["task_id"] == task_id
    # Its task's coordination channel: the claimant posts on it, and any session of the
    # workspace reads it.
    channel = first["lease"]["coordination_channel_id"]
    posted = agent_call(
        stack, token, f"channels/{channel}/send", {"body": "on it", "metadata": {"message_kind": "status"}}
    )
    assert posted.status_code == 201, posted.text
    watcher = team.session("watcher")
    seen = httpx.get(f"{stack.runtime_url}/api/agent/channels/{channel}/recv", headers=bearer(watcher), timeout=10)
    assert [m["body"] for m in seen.json()["messages"]] == ["on it"]
    # The files by digest, each fetched with the session's token.
    ref = first["input"]["files"]["src/register.py"]
    fetched = httpx.get(f"{stack.runtime_url}{ref['url']}", headers=bearer(token), timeout=10)
    assert fetched.status_code == 200 and fetched.json()["content"] == "def register(user):\n    return user\n"

    beat = under_lease(stack, token, first, "heartbeat", lease_ttl_seconds=120)
    assert beat.status_code == 200, beat.text
    assert when(beat.json()["lease"]["lease_until"]) > when(first["lease"]["lease_until"]) + 60
    assert beat.json()["lease"]["heartbeat_at"] is not None

    result = {"files": {"src/register.py": VALIDATED}, "summary": "validated the email", "usage": USAGE}
    done = under_lease(stack, token, first, "complete", result=result)
    assert done.status_code == 200, done.text
    assert done.json()["lease"]["status"] == "completed" and done.json()["run"]["status"] == "completed"

    second = claim(stack, token)
    assert second is not None and second["input"]["agent_type"] == "test"
    # What the codegen run produced is where the test run starts.
    written = second["input"]["files"]["src/register.py"]
    content = httpx.get(f"{stack.runtime_url}{written['url']}", headers=bearer(token), timeout=10).json()["content"]
    assert content == VALIDATED
    assert [s["summary"] for s in second["input"]["earlier"]] == ["validated the email"]
    tests = "from src.register import register\n\n\ndef test_register():\n    assert register({'email': 'a'})\n"
    result = {"files": {"tests/test_register.py": tests}, "summary": "tested it", "usage": USAGE}
    assert under_lease(stack, token, second, "complete", result=result).status_code == 200

    task = wait_for(team.api, task_id, lambda t: t["status"] == "review" and t["cost"]["estimatedCostUsd"] > 0)
    assert task["cost"]["estimatedCostUsd"] == pytest.approx(2 * USD)
    assert task["cost"]["inputTokens"] == 4000 and task["cost"]["outputTokens"] == 800
    assert task["results"][second["input"]["subtask_id"]]["output"]["files"]["tests/test_register.py"] == tests
    assert model_calls(stack, "Validate the email") == [], "the executor never ran the external task"


def test_what_fails_the_checks_fails_the_run_and_the_next_attempt_gets_the_problems(stack: Stack, team: Team) -> None:
    token = team.session()
    (task_id,) = submit(team.api, task_request("Break the syntax", config=EXTERNAL))
    first = claim(stack, token)
    assert first is not None
    result = {"files": {"src/register.py": "def register(user:\n"}, "summary": "oops", "usage": USAGE}
    failed = under_lease(stack, token, first, "complete", result=result)
    assert failed.status_code == 200, failed.text
    assert failed.json()["run"]["status"] == "failed" and failed.json()["run"]["failure_kind"] == "checks"

    retry = claim(stack, token)
    assert retry is not None and retry["task"]["id"] == task_id
    assert retry["run"]["attempt"] == 2 and "src/register.py" in retry["input"]["previous"]["error"]


def test_a_lease_nobody_heartbeats_expires_its_run_is_queued_again_and_the_late_holder_is_refused(
    stack: Stack, team: Team
) -> None:
    gone, other = team.session("gone"), team.session("other")
    (task_id,) = submit(team.api, task_request("Outlive the holder", config=EXTERNAL))
    first = claim(stack, gone, lease_ttl_seconds=2)
    assert first is not None
    claimed_until = when(first["lease"]["lease_until"])

    second = claim(stack, other, wait_seconds=15)
    requeued_at = time.time()
    assert second is not None and second["task"]["id"] == task_id
    assert second["run"]["attempt"] == 2 and second["run"]["previous_run_id"] == first["run"]["id"]
    assert requeued_at <= claimed_until + 1.5, "back in the queue within the lease and a second"

    # The holder comes back: everything it tries is refused, and changes nothing.
    result = {"files": {"src/register.py": VALIDATED}, "summary": "late", "usage": USAGE}
    late = under_lease(stack, gone, first, "complete", result=result)
    diagnostic = assert_diagnostic(late, 409, "run_not_claimed")
    assert diagnostic["category"] == "lease" and diagnostic["suggested_command"]
    assert_diagnostic(under_lease(stack, gone, first, "heartbeat"), 409, "run_not_claimed")
    assert under_lease(stack, other, second, "complete", result={**result, "summary": "on time"}).status_code == 200
    task = wait_for(team.api, task_id, lambda t: len(t["results"]) == 1)
    (only,) = task["results"].values()
    assert only["output"]["summary"] == "on time" and only["attempts"] == 2


def test_a_released_run_goes_back_to_the_queue_without_counting_an_attempt(stack: Stack, team: Team) -> None:
    token = team.session()
    (task_id,) = submit(team.api, task_request("Hand it back", config=EXTERNAL))
    first = claim(stack, token)
    assert first is not None
    released = under_lease(stack, token, first, "release", reason="another session is better at this")
    assert released.status_code == 200 and released.json()["lease"]["status"] == "released"

    again = claim(stack, token)
    assert again is not None and again["task"]["id"] == task_id
    assert again["run"]["attempt"] == 1 and again["run"]["id"] != first["run"]["id"]
    assert again["run"]["metadata"]["handover"] == 1


def test_calls_under_a_lease_are_fenced(stack: Stack, team: Team) -> None:
    holder, bystander = team.session("holder"), team.session("bystander")
    submit(team.api, task_request("Fence it", config=EXTERNAL))
    claimed = claim(stack, holder)
    assert claimed is not None

    wrong = {**claimed, "claim_token": "clm_" + "x" * 43}
    assert_diagnostic(under_lease(stack, holder, wrong, "heartbeat"), 409, "claim_token_mismatch")
    assert_diagnostic(under_lease(stack, bystander, claimed, "heartbeat"), 403, "not_lease_holder")
    assert_diagnostic(under_lease(stack, holder, {**claimed, "run": {"id": "nope"}}, "heartbeat"), 404, "run_not_found")
    assert_diagnostic(agent_call(stack, holder, "tasks/claim-next"), 409, "lease_limit_reached")
    outsider = Team(stack, "default", stack.api_key, team.api).session("outsider")
    assert_diagnostic(under_lease(stack, outsider, claimed, "heartbeat"), 404, "run_not_found")
    bad = under_lease(stack, holder, claimed, "complete", result={"files": {"../etc/passwd": "x"}, "summary": "s"})
    assert_diagnostic(bad, 400, "invalid_path")
    assert_diagnostic(agent_call(stack, holder, "tasks/claim-next", {"lease_ttl_seconds": 0}), 400, "invalid_request")
    # Nothing of that changed the lease: it is still the holder's to complete.
    result = {"files": {"src/register.py": VALIDATED}, "summary": "done", "usage": USAGE}
    assert under_lease(stack, holder, claimed, "complete", result=result).status_code == 200


def _work(runtime_url: str, token: str, claims: int) -> list[str]:
    """One agent process: claims and completes until it has done `claims` runs."""
    done: list[str] = []
    with httpx.Client(base_url=runtime_url, headers=bearer(token), timeout=30) as client:
        while len(done) < claims:
            response = client.post("/api/agent/tasks/claim-next", json={"wait_seconds": 5})
            if response.status_code == 204:
                break
            claimed = response.json()["claim"]
            body = {"claim_token": claimed["claim_token"], "result": {"summary": "ok", "usage": USAGE}}
            ended = client.post(f"/api/agent/tasks/{claimed['run']['id']}/complete", json=body)
            assert ended.status_code == 200, ended.text
            done.append(claimed["run"]["id"])
    return done


def test_agent_processes_racing_for_the_queue_never_hold_one_run_twice(stack: Stack, team: Team) -> None:
    tasks = submit(team.api, *(task_request(f"Review part {i}", "review", config=EXTERNAL) for i in range(24)))
    tokens = [team.session(f"racer-{i}") for i in range(6)]
    with ProcessPoolExecutor(max_workers=6) as pool:
        done = [r for f in [pool.submit(_work, stack.runtime_url, t, 24) for t in tokens] for r in f.result()]

    assert len(done) == len(set(done)) == 24, "every run claimed once, by one process"
    for task_id in tasks:
        wait_for(team.api, task_id, status_is("review"))


def test_an_executor_killed_mid_run_leaves_no_run_stuck_and_charges_each_run_once(stack: Stack, team: Team) -> None:
    """The executor's runs hold leases too: killed with SIGKILL during a model call, its run's
    lease expires (2 s here), the sweeper ends it, charged at the call's estimate, and the next
    attempt runs on the restarted executor, long before the dispatch would be redelivered."""
    with executor_restored(stack, restart=True):
        stop_idle_executor(stack)
        stack.restart_service("executor", {"LEASE_TTL_S": "2"})
        script_model(stack, {"match": "Survive the kill", "delay_ms": 30_000})
        (task_id,) = submit(team.api, task_request("Survive the kill"))
        deadline = time.monotonic() + 20
        while not model_calls(stack, "Survive the kill"):
            assert time.monotonic() < deadline, "the run never called the model"
            time.sleep(0.05)
        stack.services["executor"].kill()
        stack.restart_service("executor")
        task = wait_for(team.api, task_id, lambda t: t["status"] == "review", timeout=60)

    dump = debug_dump(stack, team.workspace, bearer(team.key))
    runs = {r["runId"]: r for r in dump["runs"] if r["taskId"] == task_id}
    expired = [r for r in runs.values() if r["status"] == "lease_expired"]
    assert len(expired) == 1 and expired[0]["attempt"] == 1
    charged = [c["run_id"] for c in dump["costRecords"] if c["task_id"] == task_id]
    assert sorted(charged) == sorted(runs), "every run charged, once"
    (lost,) = [c for c in dump["costRecords"] if c["run_id"] == expired[0]["runId"]]
    assert lost["estimated"] and lost["input_tokens"] > 0, "the call in flight is charged at its estimate"
    assert task["results"], "the next attempt did the work"


def test_the_example_agent_works_a_task_to_review(stack: Stack, team: Team) -> None:
    """`examples/external_agent.py`, as the README runs it, against the running system."""
    token = team.session("example")
    (task_id,) = submit(team.api, task_request("Document the module", config=EXTERNAL))
    env = {**os.environ, "ORCHESTRATOR_RUNTIME_URL": stack.runtime_url, "SESSION_TOKEN": token}
    script = Path(__file__).parents[2] / "examples" / "external_agent.py"
    agent = subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        task = wait_for(team.api, task_id, status_is("review"), timeout=60)
    finally:
        agent.terminate()
        output = agent.communicate(timeout=10)[0].decode()
    assert "run " in output and "completed" in output, output
    codegen = next(r for r in task["results"].values() if r["agentType"] == "codegen")
    assert codegen["output"]["files"]["src/register.py"].startswith("# Document the module\n")


def test_a_lease_survives_a_restart_of_every_service_that_serves_it(stack: Stack, team: Team) -> None:
    """The claim is an event and heartbeats are in a table: the runtime and the executor killed
    and started again, the holder heartbeats and completes as if nothing happened."""
    token = team.session()
    (task_id,) = submit(team.api, task_request("Outlast the restarts", config=EXTERNAL))
    claimed = claim(stack, token, lease_ttl_seconds=60)
    assert claimed is not None
    assert under_lease(stack, token, claimed, "heartbeat").status_code == 200
    with executor_restored(stack, restart=False):
        for name in ("runtime", "executor"):
            stack.services[name].kill()
            stack.restart_service(name)
    beat = under_lease(stack, token, claimed, "heartbeat", lease_ttl_seconds=90)
    assert beat.status_code == 200, beat.text
    result = {"files": {"src/register.py": VALIDATED}, "summary": "done", "usage": USAGE}
    assert under_lease(stack, token, claimed, "complete", result=result).status_code == 200
    wait_for(team.api, task_id, lambda t: len(t["results"]) == 1)


def configure(team: Team, **config: object) -> None:
    url = f"/api/v1/workspaces/{team.workspace}/orchestration/config"
    assert team.api.patch(url, json=config).status_code == 200


def test_budget_caps_hold_at_the_claim_and_the_task_goes_on_when_the_cap_is_raised(stack: Stack, team: Team) -> None:
    configure(team, budgetUsd=USD * 1.2)  # less than the first run will use
    token = team.session()
    (task_id,) = submit(team.api, task_request("Spend within the cap", config=EXTERNAL))
    first = claim(stack, token)
    assert first is not None
    result = {"files": {"src/register.py": VALIDATED}, "summary": "validated", "usage": {**USAGE, "input_tokens": 4000}}
    assert under_lease(stack, token, first, "complete", result=result).status_code == 200

    # The test subtask is dispatched, but the cap is reached: the claim stops it for the budget,
    # the task pauses, and the session is given nothing.
    wait_for(team.api, task_id, lambda t: len(t["results"]) == 1)
    assert claim(stack, token, wait_seconds=1) is None
    paused = wait_for(team.api, task_id, status_is("paused"))
    assert paused["cost"]["estimatedCostUsd"] > USD * 1.2
    configure(team, budgetUsd=1.0)
    resumed = claim(stack, token)
    assert resumed is not None and resumed["input"]["agent_type"] == "test"
    assert resumed["task"]["id"] == task_id


def test_a_concurrency_cap_holds_for_agent_sessions_as_for_the_executor(stack: Stack, team: Team) -> None:
    configure(team, maxConcurrentSubtasks=1)
    first_session, second_session = team.session("first"), team.session("second")
    submit(team.api, task_request("Capped one", "review", config=EXTERNAL))
    submit(team.api, task_request("Capped two", "review", config=EXTERNAL))
    first = claim(stack, first_session)
    assert first is not None
    assert claim(stack, second_session, wait_seconds=1) is None, "the other subtask waits for the slot"
    result = {"summary": "fine", "usage": USAGE}
    assert under_lease(stack, first_session, first, "complete", result=result).status_code == 200
    second = claim(stack, second_session)
    assert second is not None and second["task"]["id"] != first["task"]["id"]


def test_a_run_whose_task_was_purged_is_stopped_at_its_holders_next_call(stack: Stack, team: Team) -> None:
    token = team.session()
    (task_id,) = submit(team.api, task_request("Purged under its holder", config=EXTERNAL))
    claimed = claim(stack, token)
    assert claimed is not None
    assert team.api.post(f"/api/v1/workspaces/{team.workspace}/orchestration/purge").status_code == 200
    deadline = time.monotonic() + 10
    while (beat := under_lease(stack, token, claimed, "heartbeat")).status_code == 200:
        assert time.monotonic() < deadline, "the purge never reached the run"
        time.sleep(0.1)
    assert_diagnostic(beat, 409, "task_ended")
    result = {"files": {"src/register.py": VALIDATED}, "summary": "too late", "usage": USAGE}
    assert_diagnostic(under_lease(stack, token, claimed, "complete", result=result), 409, "run_not_claimed")
    assert claim(stack, token, wait_seconds=1) is None, "the session is free for other work"
    assert team.api.get(f"/tasks/{task_id}").status_code == 404


def test_one_session_claiming_twice_at_once_holds_no_more_than_its_limit(stack: Stack, team: Team) -> None:
    token = team.session()
    submit(team.api, task_request("One", "review", config=EXTERNAL), task_request("Two", "review", config=EXTERNAL))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: agent_call(stack, token, "tasks/claim-next", {"wait_seconds": 5}), range(2)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    (refused,) = [a for a in answers if a.status_code == 409]
    assert_diagnostic(refused, 409, "lease_limit_reached")
