"""Approve opens a pull request on the (local) GitHub server, once: end to end over HTTP, with
the approval delivered a second time on the bus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import nats
import pytest
from nats.js import JetStreamContext

from contracts.subjects import EVENTS_STREAM
from libs.devstack.stack import Stack
from tests.e2e.helpers import in_review_and_charged, status_is, submit, task_request, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


@pytest.fixture
async def js(stack: Stack) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(stack.nats.url, name="e2e-pull-requests")
    try:
        yield nc.jetstream()
    finally:
        await nc.close()


def pulls_from(stack: Stack, branch: str) -> list[dict]:
    state = httpx.get(f"{stack.github_url}/_state").json()
    return [p for p in state["pulls"] if p["head"] == branch]


async def executor_caught_up(js: JetStreamContext) -> None:
    """The executor's consumer of approvals has acknowledged everything in the stream (the last
    message is an approval)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stream = await js.stream_info(EVENTS_STREAM)
        info = await js.consumer_info(EVENTS_STREAM, "executor-pulls")
        if info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= stream.state.last_seq:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the executor did not catch up with the stream")


async def test_approval_opens_exactly_one_pull_request_even_when_delivered_twice(
    stack: Stack, api: httpx.Client, js: JetStreamContext
) -> None:
    assert stack.uses_local_github, "the tests run against the local GitHub server"
    description = f"Validate the user {uuid.uuid4().hex[:8]}"
    branch = f"agent/pr-{uuid.uuid4().hex[:8]}"
    request = task_request(description)
    request["repo"]["branch"] = branch
    (task_id,) = submit(api, request)
    task = await asyncio.to_thread(wait_for, api, task_id, in_review_and_charged)
    changed = task["results"][task["subtasks"][1]["id"]]["output"]["files"]["src/register.py"]

    decision = {"taskId": task_id, "decision": "approve"}
    assert (await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)).status_code == 200
    task = await asyncio.to_thread(wait_for, api, task_id, status_is("completed"))

    (pull,) = pulls_from(stack, branch)
    assert task["prUrl"] == pull["html_url"]
    assert (pull["state"], pull["base"], pull["title"]) == ("open", "main", description)
    assert pull["files"]["src/register.py"] == changed, "the task's final version of the file"
    assert pull["changed"] == ["src/register.py"]
    assert task_id in pull["body"]
    for subtask in task["subtasks"]:
        assert subtask["id"] in pull["body"], "the body summarizes each subtask"

    # The approval again, as a redelivery would bring it: same event, another message id.
    approved = None
    sub = await js.subscribe("events.default.task.approved", ordered_consumer=True)
    async with asyncio.timeout(10):
        async for msg in sub.messages:
            if f'"aggregate_id":"{task_id}"' in msg.data.decode():
                approved = msg.data
                break
    await sub.unsubscribe()
    assert approved is not None
    ack = await js.publish("events.default.task.approved", approved, headers={"Nats-Msg-Id": f"again-{task_id}"})
    assert not ack.duplicate
    await executor_caught_up(js)

    assert len(pulls_from(stack, branch)) == 1, "no second pull request"
    again = await asyncio.to_thread(api.get, f"/tasks/{task_id}")
    assert again.json()["task"]["prUrl"] == pull["html_url"]


async def approve_and_complete(api: httpx.Client, task_id: str) -> dict:
    await asyncio.to_thread(wait_for, api, task_id, in_review_and_charged)
    decision = {"taskId": task_id, "decision": "approve"}
    assert (await asyncio.to_thread(api.post, f"/tasks/{task_id}/review", json=decision)).status_code == 200
    return await asyncio.to_thread(wait_for, api, task_id, status_is("completed"))


async def test_a_chained_task_on_its_parents_branch_adds_its_commit_to_the_same_pull_request(
    stack: Stack, api: httpx.Client
) -> None:
    branch = f"agent/chain-{uuid.uuid4().hex[:8]}"
    parent_request = task_request(f"Parent {uuid.uuid4().hex[:8]}")
    parent_request["repo"]["branch"] = branch
    (parent_id,) = submit(api, parent_request)
    child_request = task_request(f"Child {uuid.uuid4().hex[:8]}", parentTaskId=parent_id)
    child_request["repo"]["branch"] = branch
    (child_id,) = submit(api, child_request)

    parent = await approve_and_complete(api, parent_id)
    child = await approve_and_complete(api, child_id)

    (pull,) = pulls_from(stack, branch)
    assert parent["prUrl"] == child["prUrl"] == pull["html_url"]
    assert parent_id in pull["body"] and child_id in pull["body"]
    final = child["results"][child["subtasks"][1]["id"]]["output"]["files"]["src/register.py"]
    assert pull["files"]["src/register.py"] == final, "the child's commit is on top of the parent's"
