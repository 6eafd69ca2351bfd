"""An orchestration run outlives its executor (spec 004 on spec 002's leases): the executor is
killed with SIGKILL during an agent step's model call; the step's Run lease expires, the planner
dispatches the step again, the restarted executor runs it, and the run reaches its human gate with
that step done once, its turns and cost those of both attempts, and each Run charged once."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from contracts.events import EventEnvelope
from libs.devstack.stack import Stack
from libs.domain.orchestration_run import orchestration_run_id
from libs.eventstore.store import EventStore
from tests.e2e.helpers import executor_restored, model_calls, script_model, stop_idle_executor
from tests.e2e.test_orchestration_runs import RUN, finish

pytestmark = pytest.mark.e2e


def _run(stack: Stack, message: str) -> httpx.Response:
    return httpx.post(stack.gateway_url + RUN, json={"message": message}, headers=stack.auth, timeout=180)


def _events_of(stack: Stack, run_uuid: str) -> list[EventEnvelope]:
    """The orchestration run's events and its steps' Runs' (their `task_id` is its id), from the log."""
    store = EventStore(stack.database_url, pool_size=1)
    try:
        every = store.read(0, 1_000_000)
    finally:
        store.close()
    return [e for e in every if e.aggregate_id == run_uuid or e.payload.get("task_id") == run_uuid]


def _charges(stack: Stack, run_uuid: str, count: int, timeout: float = 20) -> list[tuple[str, str, float, bool]]:
    """rm_charges' rows of the run (run, subtask, cost, estimated), once there are `count`."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(stack.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT run_id, subtask_id, cost_usd, estimated FROM rm_charges WHERE task_id = %s", (run_uuid,)
            ).fetchall()
        if len(rows) >= count or time.monotonic() > deadline:
            return [(str(r[0]), r[1], float(r[2]), r[3]) for r in rows]
        time.sleep(0.1)


def _step_history(stack: Stack, run_uuid: str) -> list[dict[str, Any]]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute("SELECT step_history FROM rm_orchestration_runs WHERE id = %s", (run_uuid,)).fetchone()
    assert row is not None
    return list(row[0])


def test_an_executor_killed_during_an_agent_step_leaves_the_step_done_once_and_each_run_charged_once(
    stack: Stack,
) -> None:
    topic = f"Outlasting a crash {uuid.uuid4().hex[:8]}"
    research = f"each with its source: {topic}"
    report = f'Write a report in Markdown on "{topic}"'
    with executor_restored(stack, restart=True):
        stop_idle_executor(stack)
        stack.restart_service("executor", {"LEASE_TTL_S": "2"})
        script_model(
            stack,
            {"match": research, "delay_ms": 30_000, "tool_calls": finish("never delivered")},
            {"match": research, "tool_calls": finish(f"{topic} has three findings")},
            {"match": report, "tool_calls": finish(f"# {topic}\n\nThree findings.")},
        )
        with ThreadPoolExecutor(1) as pool:
            answered = pool.submit(_run, stack, topic)  # it waits for the gate, through the crash
            deadline = time.monotonic() + 20
            while not model_calls(stack, research):
                assert time.monotonic() < deadline, "the research step never called the model"
                assert not answered.done(), answered.result().text
                time.sleep(0.05)
            stack.services["executor"].kill()
            stack.restart_service("executor")
            response = answered.result(timeout=120)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paused", body
    assert body["human_input_required"]["agent_context"] == f"Draft article: # {topic}\n\nThree findings.\n"
    run_uuid = str(orchestration_run_id(body["run_id"]))
    events = _events_of(stack, run_uuid)
    runs = [e.aggregate_id for e in events if e.type == "run.started"]
    (expired,) = [e for e in events if e.type == "run.lease_expired"]
    assert (expired.payload["subtask_id"], expired.payload["attempt"]) == ("step-research@1", 1)
    # The step is done once, by the attempt after the expired one, which names it.
    (done,) = [
        e for e in events if e.type == "orchestration_run.step_completed" and e.payload["step_id"] == "step-research"
    ]
    (retry,) = [e for e in events if e.type == "orchestration_run.step_dispatched" and e.payload["attempt"] == 2]
    assert retry.payload["previous_run_id"] == expired.aggregate_id == runs[0]
    assert done.payload["step_run_id"] == retry.payload["run_id"]
    assert len(model_calls(stack, research)) == 2 and len(model_calls(stack, report)) == 1

    # Each Run charged once: the lost one at its call's estimate.
    charges = _charges(stack, run_uuid, count=len(runs))
    assert sorted(c[0] for c in charges) == sorted(runs) and len(runs) == 3
    (lost,) = [c for c in charges if c[0] == expired.aggregate_id]
    assert lost[3], "the call in flight is charged at its estimate"
    # The step's line shows what both its attempts spent: the ledger's charges for them, and the
    # one turn that came back (the lost call never did).
    history = _step_history(stack, run_uuid)
    assert [(s["step_id"], s["status"]) for s in history] == [
        ("step-research", "completed"),
        ("step-report", "completed"),
        ("step-approve", "paused"),
    ]
    research_usd = sum(c[2] for c in charges if c[1] == "step-research@1")
    assert history[0]["turns"] == 1
    assert history[0]["cost_usd"] == pytest.approx(research_usd) and research_usd > lost[2] > 0

    # Approved, the run completes once, its research step still the one line it was.
    script_model(stack, {"match": "Finish this approved article", "tool_calls": finish(f"# {topic}\n\nFinal.")})
    resumed = httpx.post(
        f"{stack.gateway_url}/api/v1/orchestrations/runs/{body['run_id']}/resume",
        json={"response": {"decision": "approve"}},
        headers=stack.auth,
        timeout=120,
    ).json()
    assert resumed["status"] == "completed", resumed
    assert [s["step_id"] for s in resumed["step_history"]] == [
        "step-research",
        "step-report",
        "step-approve",
        "step-revise",
        "step-finalize",
    ]
    assert resumed["step_history"][0]["cost_usd"] == pytest.approx(research_usd)
    ends = [e for e in _events_of(stack, run_uuid) if e.type == "orchestration_run.completed"]
    assert len(ends) == 1
