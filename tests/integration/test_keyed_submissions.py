"""A submission sent with an idempotency key (the intake's, from a webhook delivery) creates its
task once: sent again, even from another workspace's point of view, it creates nothing more."""

from __future__ import annotations

import uuid

import msgspec

from contracts.commands import CommandReply, SubmitTasksCommand
from libs.domain.task import Task, keyed_task_id
from libs.eventstore.store import EventStore
from services.planner.handlers import submit_tasks
from tests.factories import task_request


def send(store: EventStore, workspace: str, key: str | None) -> CommandReply:
    command = SubmitTasksCommand(workspace, [task_request(description="add validation")], idempotency_key=key)
    return submit_tasks(msgspec.json.encode(command), store)


def test_the_same_key_twice_names_the_first_task_and_creates_no_second(store: EventStore) -> None:
    workspace, key = f"ws-{uuid.uuid4().hex[:8]}", f"delivery-{uuid.uuid4()}"

    first = send(store, workspace, key)
    again = send(store, workspace, key)

    assert first.error is None and first.status is None
    assert first.task_ids == again.task_ids == [str(keyed_task_id(workspace, key))]
    assert again.status == "existing" and again.seq == 0
    task = store.load(keyed_task_id(workspace, key))
    assert isinstance(task, Task) and task.workspace_id == workspace


def test_the_same_key_in_another_workspace_is_another_task(store: EventStore) -> None:
    key = f"delivery-{uuid.uuid4()}"

    one, other = send(store, "ws-one-" + key[-8:], key), send(store, "ws-two-" + key[-8:], key)

    assert one.status is None and other.status is None
    assert one.task_ids != other.task_ids


def test_without_a_key_each_submission_is_a_new_task(store: EventStore) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:8]}"

    assert send(store, workspace, None).task_ids != send(store, workspace, None).task_ids
