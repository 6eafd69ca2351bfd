"""A task steered by its client (spec 003): stopped while it has not finished, retried once it
failed or was cancelled, as a new task linked to it both ways."""

from __future__ import annotations

import uuid

import pytest

from contracts.payloads.shapes import BudgetCap
from libs.domain.errors import IllegalTransition
from libs.domain.task import Task
from tests.unit.test_task import (
    WORKSPACE,
    in_review,
    names,
    new_task,
    no_slot,
    replay,
    request,
    result,
    run_all_subtasks,
)


def failed() -> Task:
    task = new_task()
    task.dispatch_ready()
    task.attempt_failed("aaaa0001", "run-1", 1, "provider exploded", False, None)
    return task


@pytest.mark.parametrize(
    "make",
    [new_task, lambda: _dispatched(), lambda: _running(), in_review, lambda: _paused()],
    ids=["pending", "assigned", "running", "review", "paused"],
)
def test_a_task_that_has_not_finished_stops_as_cancelled_with_the_reason(make: object) -> None:
    task = make()  # type: ignore[operator]
    task.collect_events()

    task.stop("stopped on request")

    assert names(task.collect_events()) == ["task.cancelled"]
    assert (task.status, task.error) == ("cancelled", "stopped on request")


def _dispatched() -> Task:
    task = new_task()
    task.dispatch_ready()
    return task


def _running() -> Task:
    task = _dispatched()
    task.start()
    return task


def _paused() -> Task:
    task = _running()
    task.pause("aaaa0001", "run-1", 1, BudgetCap(cap="task", limit_usd=1.0, spent_usd=0.9, estimate_usd=0.2), None)
    return task


def test_a_stopped_task_ignores_its_runs_ends_so_what_depends_on_them_never_runs() -> None:
    task = _running()
    task.stop("stopped on request")
    task.collect_events()

    task.record_success("aaaa0001", "run-1", result("aaaa0001", {}))
    task.attempt_failed("aaaa0001", "run-1", 1, "stopped: its task was cancelled", True, None)

    assert task.collect_events() == [], "no result recorded, no attempt dispatched"
    assert task.ready_subtasks() == [] and task.status == "cancelled"


def test_a_subtask_queued_for_a_slot_is_not_released_once_its_task_stopped() -> None:
    task = new_task()
    task.dispatch_ready(no_slot)
    task.stop("stopped on request")
    task.collect_events()

    assert task.release("aaaa0001") is False
    assert task.collect_events() == []


@pytest.mark.parametrize("end", ["approved", "completed", "failed", "cancelled"])
def test_a_finished_or_approved_task_cannot_be_stopped(end: str) -> None:
    task = in_review()
    if end in ("approved", "completed"):
        task.approve(None)
    if end == "completed":
        task.complete("https://github.com/acme/app/pull/1", None)
    if end == "failed":
        task.reject("no")
    if end == "cancelled":
        task.stop("first")
    task.collect_events()

    with pytest.raises(IllegalTransition, match=f"cannot stop a task in status '{end}'"):
        task.stop("again")
    assert task.collect_events() == []


@pytest.mark.parametrize("make", [failed, lambda: _stopped()], ids=["failed", "cancelled"])
def test_a_failed_or_cancelled_task_is_retried_once_linked_to_its_retry(make: object) -> None:
    task = make()  # type: ignore[operator]
    task.collect_events()
    retry_id = uuid.uuid4()

    task.retry(retry_id)

    assert names(task.collect_events()) == ["task.retried"]
    assert task.retried_by == str(retry_id) and task.status in ("failed", "cancelled")
    with pytest.raises(IllegalTransition, match=f"retried already, by task {retry_id}"):
        task.retry(uuid.uuid4())


def _stopped() -> Task:
    task = _running()
    task.stop("stopped on request")
    return task


@pytest.mark.parametrize("make", [new_task, _running, in_review], ids=["pending", "running", "review"])
def test_a_task_that_has_not_failed_cannot_be_retried(make: object) -> None:
    task = make()  # type: ignore[operator]
    task.collect_events()

    with pytest.raises(IllegalTransition, match="cannot retry a task in status"):
        task.retry(uuid.uuid4())
    assert task.collect_events() == []


def test_a_revised_task_is_not_retried_its_revision_carries_on() -> None:
    task = in_review()
    revision = uuid.uuid4()
    task.revise("more tests", revision)

    with pytest.raises(IllegalTransition, match=f"its revision {revision} carries its work on"):
        task.retry(uuid.uuid4())


def test_the_retry_and_its_link_replay_from_the_events() -> None:
    task = failed()
    retry_id = uuid.uuid4()
    task.retry(retry_id)

    rebuilt = replay(task.collect_events())

    assert (rebuilt.status, rebuilt.retried_by) == ("failed", str(retry_id))
    retried = Task.submit(retry_id, WORKSPACE, rebuilt.rerun_request(), [], retry_of=str(task.id))
    assert replay(retried.collect_events()).retry_of == str(task.id)


def test_a_retry_starts_from_the_files_the_task_started_from_with_no_parent_to_wait_for() -> None:
    parent = new_task()
    run_all_subtasks(parent)
    parent.request_review()
    parent.approve(None)
    parent.complete(None, None)
    child = Task.submit(uuid.uuid4(), WORKSPACE, {**request(), "parentTaskId": str(parent.id)}, [])
    child.start_after_parent(parent)
    child.fail("no")

    again = child.rerun_request()

    assert again["parentTaskId"] is None
    assert again["repo"]["files"] == child.base_files()
    assert again["description"] == child.request["description"] and again["config"] == child.request["config"]


def test_a_chained_task_that_ended_while_waiting_for_its_parent_is_retried_waiting_again() -> None:
    parent = new_task()
    child = Task.submit(uuid.uuid4(), WORKSPACE, {**request(), "parentTaskId": str(parent.id)}, [])
    child.stop("stopped on request")

    again = child.rerun_request()

    assert again["parentTaskId"] == str(parent.id)
    assert again["repo"]["files"] == request()["repo"]["files"]
