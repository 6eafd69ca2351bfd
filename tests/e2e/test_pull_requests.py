"""Approve opens a pull request on the (local) GitHub server, once: end to end over HTTP, with
the approval delivered a second time on the bus."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import nats
import psycopg
import pytest
from nats.js import JetStreamContext

from contracts.subjects import EVENTS_STREAM
from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    executor_restored,
    in_review_and_charged,
    log_head,
    status_is,
    stop_idle_executor,
    submit,
    task_request,
    wait_for,
    wait_quiet,
)

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


def all_pulls(stack: Stack) -> list[dict]:
    return httpx.get(f"{stack.github_url}/_state").json()["pulls"]


def track_approvals_as_before_the_upgrade(stack: Stack) -> None:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("UPDATE consumer_tracking SET consumer = 'executor' WHERE consumer = 'executor-pulls'")


def pull_request_events_after(stack: Stack, seq: int) -> int:
    """How many pull request events the log holds past `seq` (their aggregate's topic)."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM orchestrator_events WHERE notification_id > %s AND topic LIKE %s",
            (seq, "libs.domain.pull_request:%"),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def test_an_upgrade_that_adds_the_approvals_consumer_replays_past_approvals_as_no_ops(
    stack: Stack, api: httpx.Client, js: JetStreamContext
) -> None:
    """A deployment from before `executor-pulls` existed handled its approvals on `executor`.
    The new durable, made at the upgrade, is delivered every approval the stream holds: each
    finds its pull request on record, so none is opened, pushed or recorded again."""
    branch = f"agent/upgrade-{uuid.uuid4().hex[:8]}"
    request = task_request(f"Before the upgrade {uuid.uuid4().hex[:8]}")
    request["repo"]["branch"] = branch
    (task_id,) = submit(api, request)
    task = await approve_and_complete(api, task_id)
    await asyncio.to_thread(wait_quiet, stack)
    pulls_before, head = all_pulls(stack), log_head(stack)

    # The upgrade: the executor stops, and comes back with a consumer of approvals it never had.
    # Before it, the approvals' tracking rows were the `executor` durable's.
    with executor_restored(stack, restart=False):
        await asyncio.to_thread(stop_idle_executor, stack)
        await js.delete_consumer(EVENTS_STREAM, "executor-pulls")
        await asyncio.to_thread(track_approvals_as_before_the_upgrade, stack)
        await asyncio.to_thread(stack.restart_service, "executor")

    approvals = (await js.stream_info(EVENTS_STREAM, subjects_filter="events.*.task.approved")).state.subjects
    assert approvals and sum(approvals.values()) >= 1
    deadline = time.monotonic() + 30
    while True:
        info = await js.consumer_info(EVENTS_STREAM, "executor-pulls")
        replayed = info.delivered.consumer_seq >= sum(approvals.values())
        if replayed and info.num_pending == 0 and info.num_ack_pending == 0:
            break
        assert time.monotonic() < deadline, "the new consumer did not replay the stream's approvals"
        await asyncio.sleep(0.05)

    assert all_pulls(stack) == pulls_before, "nothing opened or pushed"
    assert pull_request_events_after(stack, head) == 0, "nothing recorded again"
    again = await asyncio.to_thread(api.get, f"/tasks/{task_id}")
    assert again.json()["task"]["prUrl"] == task["prUrl"]
