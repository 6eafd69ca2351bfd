"""What an API client does: submit, poll, review, read the SSE feed (HTTP only); what an
operator does to the read models: snapshot them, rebuild them from the log; and what a test asks
of the local model server: script its answers, read the calls it was sent."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack.stack import Stack
from libs.eventstore.store import EVENTS_TABLE
from libs.readmodels.schema import TABLES
from tests.factories import task_request

__all__ = ["task_request"]

FEED = "/api/v1/workspaces/default/orchestration/events"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def new_workspace(stack: Stack, prefix: str, name: str | None = None) -> dict[str, str]:
    """A workspace of the test's own (`workspaceId`, `keyId`, `apiKey`), through the admin API."""
    created = stack.create_workspace(f"{prefix}-{uuid.uuid4().hex[:8]}", name)
    assert created is not None
    return created


def orchestration(stack: Stack, workspace: str, what: str) -> str:
    """A URL of the stream service's spec 001 routes (`events`, `debug-dump`, ...)."""
    return f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/{what}"


def debug_dump(stack: Stack, workspace: str, headers: dict[str, str]) -> dict[str, Any]:
    response = httpx.get(orchestration(stack, workspace, "debug-dump"), headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def submit(client: httpx.Client, *requests: dict) -> list[str]:
    response = client.post("/tasks", json={"tasks": list(requests)})
    assert response.status_code == 201, response.text
    return response.json()["taskIds"]


def get_task(client: httpx.Client, task_id: str) -> dict:
    response = client.get(f"/tasks/{task_id}")
    assert response.status_code == 200, response.text
    return response.json()["task"]


def wait_for(client: httpx.Client, task_id: str, predicate: Callable[[dict], bool], timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    task = get_task(client, task_id)
    while not predicate(task):
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task_id} did not get there in {timeout}s: {json.dumps(task)[:2000]}")
        time.sleep(0.05)
        task = get_task(client, task_id)
    return task


def in_review_and_charged(task: dict) -> bool:
    """In review with every subtask's runs priced by the cost ledger."""
    results = task["results"].values()
    return (
        task["status"] == "review"
        and len(results) == len(task["subtasks"])
        and all(r["cost"]["subrequests"] > 0 for r in results)
    )


def status_is(*statuses: str) -> Callable[[dict], bool]:
    return lambda task: task["status"] in statuses


def sse_events(response: httpx.Response) -> Iterator[dict]:
    """Parses an SSE body into {id, event, data} frames; comments are skipped."""
    frame: dict[str, str] = {}
    for line in response.iter_lines():
        if line == "":
            if "data" in frame:
                yield {"id": int(frame["id"]), "event": frame.get("event"), "data": json.loads(frame["data"])}
            frame = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            frame[field] = value[1:] if value.startswith(" ") else value


def snapshot_read_models(database_url: str) -> dict[str, list[str]]:
    """Every row of every read model, as PostgreSQL's text rendering, in a stable order."""
    with psycopg.connect(database_url) as conn:
        return {
            table: [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY t::text").fetchall()]
            for table in TABLES
        }


def rebuild_read_models(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The operator's command: `python -m libs.readmodels.rebuild`."""
    return subprocess.run(
        [sys.executable, "-m", "libs.readmodels.rebuild"],
        env={**os.environ, "DATABASE_URL": stack.database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def live_and_rebuilt(stack: Stack) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Once nothing is in flight: the read models as they are, then as a rebuild from the log
    makes them (the stream service stopped for it, as the operator's command asks)."""
    wait_quiet(stack)
    live = snapshot_read_models(stack.database_url)
    stack.services["stream"].stop()
    try:
        result = rebuild_read_models(stack)
        assert result.returncode == 0, result.stderr
        rebuilt = snapshot_read_models(stack.database_url)
    finally:
        stack.restart_service("stream")
    return live, rebuilt


def executor_runs(stack: Stack) -> dict[str, float]:
    """The executor's run slots and its runs by state, as its /metrics shows them."""
    text = httpx.get(f"http://127.0.0.1:{stack.ports.services['executor']}/metrics", timeout=10).text
    samples = {
        (s.name, tuple(s.labels.values())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }
    runs = {state: samples[("orchestrator_runs", (state,))] for state in ("working", "waiting", "resuming")}
    return {"slots": samples[("orchestrator_run_slots", ())], **runs}


def stop_idle_executor(stack: Stack, timeout: float = 30) -> None:
    """Stops the executor once nothing is in flight and no run is on it: a run stopped midway
    would come back, redelivered, in some later test."""
    wait_quiet(stack)
    deadline = time.monotonic() + timeout
    while any(executor_runs(stack)[state] for state in ("working", "waiting", "resuming")):
        assert time.monotonic() < deadline, f"the executor did not become idle: {executor_runs(stack)}"
        time.sleep(0.05)
    stack.services["executor"].stop()


@contextlib.contextmanager
def executor_restored(stack: Stack, restart: bool) -> Iterator[None]:
    """However the block ends, the executor runs after it as the stack configures it: started
    again if it is not running, and restarted anyway when `restart` (the block changed its
    environment)."""
    try:
        yield
    finally:
        process = stack.services["executor"]
        if restart or not process.is_running():
            if process.is_running():
                process.stop()
            stack.restart_service("executor")


def wait_quiet(stack: Stack) -> None:
    """Waits until nothing is in flight: the projector has reached the log's head, twice."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        stable = 0
        while stable < 3:
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM orchestrator_events").fetchone()[0]
            pos = conn.execute("SELECT coalesce(max(position), 0) FROM rm_position").fetchone()[0]
            stable = stable + 1 if pos == head else 0
            time.sleep(0.3)


def script_model(stack: Stack, *behaviours: dict[str, Any]) -> None:
    """Queues behaviours on the local model server (`POST /_script`)."""
    response = httpx.post(f"{stack.model_server_url}/_script", json={"behaviours": list(behaviours)}, timeout=10)
    assert response.status_code == 200, response.text


def model_calls(stack: Stack, *texts: str) -> list[dict[str, Any]]:
    """The calls the local model server was sent whose request holds every one of `texts`."""
    calls = httpx.get(f"{stack.model_server_url}/_calls", timeout=10).json()["calls"]
    quoted = [json.dumps(text)[1:-1] for text in texts]  # as each appears inside the request's JSON
    return [c for c in calls if all(q in json.dumps(c["request"]) for q in quoted)]


def log_head(stack: Stack) -> int:
    """The log's last seq, read from the store itself."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0
