"""Spec 001's purge: a workspace's state cleared from the read models (config and keys kept),
unfinished work stopped, the history kept in the log, and a rebuild giving the same result."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from libs.domain.ledger import ledger_id
from libs.domain.orchestration_run import orchestration_run_id
from libs.eventstore.store import EventStore
from tests.e2e.helpers import (
    bearer,
    in_review_and_charged,
    live_and_rebuilt,
    log_head,
    model_calls,
    new_workspace,
    script_model,
    sse_events,
    submit,
    task_request,
    wait_for,
    wait_quiet,
)
from tests.e2e.test_orchestration_runs import RUN, finish

pytestmark = pytest.mark.e2e


def task_cancelled(stack: Stack, task_id: str) -> bool:
    store = EventStore(stack.database_url, pool_size=1)
    try:
        return any(e.type == "task.cancelled" and e.aggregate_id == task_id for e in store.read(0, 1_000_000))
    finally:
        store.close()


def test_purge_clears_the_workspace_keeps_its_config_and_replays_to_the_same_state(stack: Stack) -> None:
    created = stack.create_workspace()
    assert created is not None
    workspace, key = created["workspaceId"], bearer(created["apiKey"])
    base = f"/api/v1/workspaces/{workspace}/orchestration"
    stream = httpx.Client(base_url=stack.stream_url + base, timeout=30, headers=key)
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as api, stream:
        assert api.patch(f"{base}/config", json={"budgetUsd": 12.5}).status_code == 200
        done, waiting = submit(api, task_request("finished before the purge"), task_request("still in review"))
        wait_for(api, done, in_review_and_charged)
        wait_for(api, waiting, in_review_and_charged)
        api.post(f"/tasks/{done}/review", json={"taskId": done, "decision": "approve"})
        wait_for(api, done, lambda t: t["status"] == "completed")

        response = api.post(f"{base}/purge")
        assert response.status_code == 200
        assert response.json() == {"purged": ["todos", "events", "budgets", "tool_logs", "session_ids", "caches"]}

        assert api.get(f"/tasks/{done}").status_code == 404
        assert api.get(f"/tasks/{waiting}").status_code == 404
        assert api.get("/costs?since=0").json()["tasks"] == []
        assert api.get(f"{base}/config").json() == {"budgetUsd": 12.5}, "the config is kept"
        dump = stream.get("/debug-dump").json()
        assert dump["tasks"] == [] and dump["costRecords"] == []
        assert [e["type"] for e in dump["events"]][:1] == ["workspace.purged"]

        # An old resume point is refused with the reason, not answered with a silent gap.
        purge_seq = dump["events"][0]["seq"]
        refused = stream.get("/events?since_seq=0")
        assert refused.status_code == 410
        assert refused.json()["error"] == "events_purged"
        assert f"since_seq={purge_seq}" in refused.json()["message"]
        # Without a resume point the feed starts after the purge; seq goes on increasing.
        (after,) = submit(api, task_request("after the purge"))
        wait_for(api, after, in_review_and_charged)
        with stream.stream("GET", "/events") as feed:
            frames = []
            for frame in sse_events(feed):
                frames.append(frame)
                if frame["event"] == "task.review_requested":
                    break
        assert all(f["id"] > purge_seq for f in frames)
        # The unfinished task was stopped: on record, and not on the feed, which keeps nothing
        # of a purged task.
        assert waiting not in json.dumps(frames)
        assert task_cancelled(stack, waiting)

    live, rebuilt = live_and_rebuilt(stack)
    assert rebuilt == live


def test_a_stream_service_restarted_after_a_purge_still_keeps_a_stopped_tasks_late_events_off_the_live_feed(
    stack: Stack,
) -> None:
    """What a stopped task's runs record after the purge (a charge, say) is not the workspace's
    any more: the live feed leaves it out after a restart of the stream service as before it."""
    workspace, key = (created := new_workspace(stack, "purged-live"))["workspaceId"], bearer(created["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as api:
        (stopped,) = submit(api, task_request("still in review at the purge"))
        wait_for(api, stopped, in_review_and_charged)
        purge = api.post(f"/api/v1/workspaces/{workspace}/orchestration/purge")
        assert purge.status_code == 200
        stack.services["stream"].kill()
        stack.restart_service("stream")

        frames: list[dict] = []
        since = log_head(stack)
        url = f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/events"
        with httpx.stream("GET", url, params={"since_seq": since}, headers=key, timeout=30) as feed:
            frames_of = sse_events(feed)
            # A task of the workspace's own, followed to review: the feed is live by then.
            (before,) = submit(api, task_request("after the restart"))
            frames += _until_review(frames_of, before)
            _late_charge(stack, stopped)  # as a stopped run's end would be charged, after the purge
            (after,) = submit(api, task_request("after the late charge"))
            frames += _until_review(frames_of, after)

    assert any(f["event"] == "task.submitted" for f in frames), "the live feed goes on"
    assert stopped not in json.dumps(frames), "nothing of the stopped task after its purge"


def _until_review(frames: Iterator[dict], task_id: str) -> list[dict]:
    read = []
    for frame in frames:
        read.append(frame)
        if frame["event"] == "task.review_requested" and frame["data"]["payload"]["task_id"] == task_id:
            return read
    raise AssertionError(f"the feed ended before task {task_id} was in review")


def _late_charge(stack: Stack, task_id: str) -> None:
    store = EventStore(stack.database_url, pool_size=1)
    try:
        ledger = store.load_many([ledger_id(task_id)])[ledger_id(task_id)]
        ledger.charge(str(uuid.uuid4()), "late", "claude-sonnet-4", 10, 1, 0, 0, 0.0001, 5, 1, True)
        store.save([ledger])
    finally:
        store.close()


def test_a_purge_stops_the_workspaces_orchestration_runs_and_takes_them_off_the_read_models(stack: Stack) -> None:
    """A run paused at its gate and one in an agent step's model call: the purge fails both (the
    waiting `run` is answered so), its step's Run is stopped and the run goes no further, and
    nothing of either is left to resume or claim."""
    workspace, key = (created := new_workspace(stack, "purged-runs"))["workspaceId"], bearer(created["apiKey"])
    gated, working = (f"{what} {uuid.uuid4().hex[:8]}" for what in ("Gated topic", "Working topic"))
    script_model(
        stack,
        {"match": f"each with its source: {gated}", "tool_calls": finish("found")},
        {"match": f'Write a report in Markdown on "{gated}"', "tool_calls": finish("# Draft")},
        {"match": f"each with its source: {working}", "delay_ms": 30_000, "tool_calls": finish("too late")},
    )
    with httpx.Client(base_url=stack.gateway_url, timeout=120, headers=key) as api, ThreadPoolExecutor(1) as pool:
        paused = api.post(RUN, json={"message": gated}).json()
        assert paused["status"] == "paused", paused
        answered = pool.submit(api.post, RUN, json={"message": working})
        deadline = time.monotonic() + 20
        while not model_calls(stack, working):
            assert time.monotonic() < deadline and not answered.done(), "the working run never called the model"
            time.sleep(0.05)

        assert api.post(f"/api/v1/workspaces/{workspace}/orchestration/purge").status_code == 200
        stopped = answered.result(timeout=30).json()

    assert stopped == {"status": "failed", "run_id": stopped["run_id"], "response": "the workspace was purged"}
    runs = [str(orchestration_run_id(r)) for r in (paused["run_id"], stopped["run_id"])]
    wait_quiet(stack)
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        for table in ("rm_orchestration_runs", "rm_run_queue"):
            rows = conn.execute(f"SELECT count(*) FROM {table} WHERE workspace_id = %s", (workspace,)).fetchone()
            assert rows == (0,), f"{table} keeps the purged workspace's runs"
    # On record: both failed, and the working step's Run was stopped, not retried or followed.
    store = EventStore(stack.database_url, pool_size=1)
    try:
        events = [e for e in store.read(0, 1_000_000) if e.workspace_id == workspace]
    finally:
        store.close()
    failed = {e.aggregate_id: e.payload["reason"] for e in events if e.type == "orchestration_run.failed"}
    assert failed == dict.fromkeys(runs, "the workspace was purged")
    (step_end,) = [e for e in events if e.payload.get("task_id") == runs[1] and e.type == "run.failed"]
    assert step_end.payload["error"] == "stopped: the workspace was purged"
    assert model_calls(stack, f'Write a report in Markdown on "{working}"') == []
    # The paused run's gate is gone with it: a resume finds nothing.
    resume = f"{stack.gateway_url}/api/v1/orchestrations/runs/{paused['run_id']}/resume"
    gone = httpx.post(resume, json={"response": {"decision": "approve"}}, headers=key, timeout=30)
    assert gone.status_code == 404, gone.text
    live, rebuilt = live_and_rebuilt(stack)
    assert rebuilt == live
