"""The AsyncAPI document says what the bus really carries: every message a task's life puts on the
EVENTS stream has a channel whose address is its subject and a payload schema it validates
against, read off JetStream itself."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import nats
import pytest

from contracts.subjects import EVENTS_STREAM, workspace_events
from exports.asyncapi import document
from libs.devstack.stack import Stack
from libs.web.ops import VERSION
from tests.asyncapi import validators
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, submit, task_request, wait_for

pytestmark = pytest.mark.e2e


async def events_on_the_bus(stack: Stack, workspace_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every message the EVENTS stream holds for the workspace: (subject, decoded body)."""
    nc = await nats.connect(stack.nats.url)
    try:
        js = nc.jetstream()
        subjects = workspace_events(workspace_id)
        held = (await js.stream_info(EVENTS_STREAM, subjects_filter=subjects)).state.subjects or {}
        sub = await js.subscribe(subjects, stream=EVENTS_STREAM, ordered_consumer=True)
        received = []
        for _ in range(sum(held.values())):
            msg = await sub.next_msg(timeout=10)
            received.append((msg.subject, json.loads(msg.data)))
        await sub.unsubscribe()
        return received
    finally:
        await nc.close()


async def test_every_event_of_a_tasks_life_matches_its_asyncapi_message(stack: Stack) -> None:
    workspace = new_workspace(stack, "asyncapi")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(workspace["apiKey"])) as api:
        [task_id] = submit(api, task_request())
        wait_for(api, task_id, in_review_and_charged)
        decision = {"taskId": task_id, "decision": "approve"}
        assert (await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)).status_code == 200
        wait_for(api, task_id, lambda t: t["status"] == "completed")

    doc = document(VERSION)
    checks = validators(doc)
    seen: set[str] = set()
    async with asyncio.timeout(60):
        on_the_bus = await events_on_the_bus(stack, workspace["workspaceId"])
    for subject, body in on_the_bus:
        channel_id, validator = checks[body["type"]]
        address = doc["channels"][channel_id]["address"]
        assert subject == address.replace("{workspaceId}", workspace["workspaceId"])
        errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
        assert not errors, (body["type"], errors)
        seen.add(body["type"])

    # The whole of RW-1's path was checked, from the workspace's creation to the task's end.
    assert {
        "workspace.created",
        "workspace.key_issued",
        "task.submitted",
        "task.subtask_dispatched",
        "run.started",
        "run.model_called",
        "run.tool_called",
        "run.succeeded",
        "ledger.charged",
        "task.review_requested",
        "gate.opened",
        "gate.decided",
        "task.approved",
        "pull_request.opened",
        "task.completed",
    } <= seen
