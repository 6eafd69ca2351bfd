"""Invariant 1: dropping every read model and replaying the log rebuilds them byte for byte."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from libs.devstack.stack import Stack
from libs.readmodels.schema import TABLES
from tests.e2e.helpers import in_review_and_charged, status_is, submit, task_request, wait_for

pytestmark = pytest.mark.e2e


def _snapshot(database_url: str) -> dict[str, list[str]]:
    """Every row of every read model, as PostgreSQL's text rendering, in a stable order."""
    with psycopg.connect(database_url) as conn:
        return {
            table: [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY t::text").fetchall()]
            for table in TABLES
        }


def _rebuild(stack: Stack) -> subprocess.CompletedProcess[str]:
    """The operator's command: `python -m libs.readmodels.rebuild`."""
    return subprocess.run(
        [sys.executable, "-m", "libs.readmodels.rebuild"],
        env={**os.environ, "DATABASE_URL": stack.database_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _quiet(stack: Stack) -> None:
    """Waits until nothing is in flight: the projector has reached the log's head, twice."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        stable = 0
        while stable < 3:
            head = conn.execute("SELECT coalesce(max(notification_id), 0) FROM orchestrator_events").fetchone()[0]
            pos = conn.execute("SELECT coalesce(max(position), 0) FROM rm_position").fetchone()[0]
            stable = stable + 1 if pos == head else 0
            time.sleep(0.3)


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
    _quiet(stack)
    live = _snapshot(stack.database_url)
    assert all(live[t] for t in TABLES)

    stack.services["stream"].stop()
    try:
        result = _rebuild(stack)
        assert result.returncode == 0, result.stderr
        rebuilt = _snapshot(stack.database_url)
    finally:
        stack.restart_service("stream")

    assert rebuilt == live


def test_rebuild_refuses_while_a_projector_runs(stack: Stack) -> None:
    result = _rebuild(stack)
    assert result.returncode != 0
    assert "stop the stream service first" in result.stderr
