"""The Task aggregate: its status machine, subtask dispatch, and the events it emits."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from eventsourcing.domain import Aggregate

from contracts.payloads.shapes import BudgetCap, Changes, Files, PlannedSubtask, RunOutput, SubtaskResult
from contracts.tasks import DEFAULT_MAX_RETRIES
from libs.domain.base import EventTypes, derived_id, event_payload
from libs.domain.errors import IllegalTransition
from libs.domain.task import DispatchGate, Task

WORKSPACE = "ws-task"
REPO_FILES = {"src/app.py": "def main():\n    return 1\n", "README.md": "# app\n"}


def request(description: str = "Add a greeting") -> dict[str, Any]:
    return {
        "description": description,
        "agentType": "codegen",
        "repo": {"owner": "acme", "repo": "app", "branch": "feature", "baseBranch": "main", "files": dict(REPO_FILES)},
        "config": {"model": "claude-sonnet-4-20250514", "provider": "anthropic", "maxRetries": 3},
        "parentTaskId": None,
    }


def planned(subtask_id: str, agent_type: str, description: str, *dependencies: str) -> PlannedSubtask:
    return PlannedSubtask(id=subtask_id, agent_type=agent_type, description=description, dependencies=[*dependencies])


def two_step_plan() -> list[PlannedSubtask]:
    return [
        planned("aaaa0001", "codegen", "Add a greeting"),
        planned("bbbb0002", "test", "Write tests for: Add a greeting", "aaaa0001"),
    ]


def new_task(subtasks: list[PlannedSubtask] | None = None) -> Task:
    return Task.submit(uuid.uuid4(), WORKSPACE, request(), two_step_plan() if subtasks is None else subtasks)


def result(subtask_id: str, files: Files, deleted: list[str] | None = None) -> SubtaskResult:
    output = RunOutput(files=files, summary=f"changed {len(files)} file(s)", deleted_files=deleted or [])
    return SubtaskResult(subtask_id=subtask_id, agent_type="codegen", success=True, output=output, duration_ms=120)


def names(events: list[Any]) -> list[str]:
    return [EventTypes.name(type(e)) for e in events]


def run_all_subtasks(task: Task) -> None:
    """Dispatches and succeeds every subtask, in dependency order, as the planner would."""
    while ready := task.ready_subtasks():
        for subtask in ready:
            task.dispatch(subtask)
            task.start()
            task.record_success(subtask.id, f"run-{subtask.id}", result(subtask.id, {}))


def in_review() -> Task:
    task = new_task()
    run_all_subtasks(task)
    task.request_review()
    return task


def replay(events: list[Aggregate.Event]) -> Task:
    aggregate = events[0].mutate(None)
    for event in events[1:]:
        aggregate = event.mutate(aggregate)
    assert isinstance(aggregate, Task)
    return aggregate


# --- the happy path ------------------------------------------------------------------------


def test_full_status_machine_from_pending_to_completed() -> None:
    task = new_task()
    seen = [task.status]
    first, second = two_step_plan()

    task.dispatch(first)
    seen.append(task.status)
    task.start()
    seen.append(task.status)
    task.record_success(first.id, "run-1", result(first.id, {"src/greet.py": "print('hi')\n"}))
    task.dispatch(second)
    task.record_success(second.id, "run-2", result(second.id, {"tests/test_greet.py": "def test(): pass\n"}))
    seen.append(task.status)
    task.request_review()
    seen.append(task.status)
    task.approve("looks good")
    seen.append(task.status)
    task.complete("https://github.com/acme/app/pull/7", None)
    seen.append(task.status)

    assert seen == ["pending", "assigned", "running", "running", "review", "approved", "completed"]
    assert task.pr_url == "https://github.com/acme/app/pull/7"
    assert task.error is None


def test_submitted_task_is_pending_with_its_request_and_plan() -> None:
    task_id = derived_id("test", "submitted")
    task = Task.submit(task_id, WORKSPACE, request(), two_step_plan(), revision_of="older-task")

    assert task.id == task_id
    assert task.status == "pending"
    assert task.workspace_id == WORKSPACE
    assert task.request["description"] == "Add a greeting"
    assert [s.id for s in task.subtasks] == ["aaaa0001", "bbbb0002"]
    assert task.revision_of == "older-task"
    assert task.dispatched == []
    assert task.succeeded == {}


def test_start_only_moves_an_assigned_task() -> None:
    task = new_task()
    task.start()  # still pending: nothing to start
    assert task.status == "pending"
    assert names(task.collect_events()) == ["task.submitted"]

    task.dispatch(two_step_plan()[0])
    task.start()
    task.start()  # already running: no second Started
    assert task.status == "running"
    assert names(task.collect_events()) == ["task.subtask_dispatched", "task.started"]


def test_complete_twice_is_a_no_op() -> None:
    task = in_review()
    task.approve(None)
    task.complete(None, "no GitHub credentials")
    task.collect_events()

    task.complete("https://example.invalid/pr/1", None)

    assert task.collect_events() == []
    assert task.status == "completed"
    assert task.pr_url is None


# --- dispatch over the subtask DAG ---------------------------------------------------------


def test_only_subtasks_without_pending_dependencies_are_ready() -> None:
    task = new_task()

    assert [s.id for s in task.ready_subtasks()] == ["aaaa0001"]


def test_second_subtask_becomes_ready_only_after_the_first_succeeded() -> None:
    task = new_task()
    first, second = two_step_plan()

    task.dispatch(first)
    assert task.ready_subtasks() == []  # the first is in flight, the second waits for it

    task.start()
    task.record_success(first.id, "run-1", result(first.id, {}))

    assert [s.id for s in task.ready_subtasks()] == [second.id]
    task.dispatch(second)
    assert task.ready_subtasks() == []
    assert task.dispatched == [first.id, second.id]


def test_independent_subtasks_are_ready_together() -> None:
    subtasks = [
        planned("p1", "codegen", "one"),
        planned("p2", "review", "two"),
        planned("p3", "test", "three", "p1", "p2"),
    ]
    task = new_task(subtasks)
    for s in task.ready_subtasks():
        task.dispatch(s)
    task.start()
    task.record_success("p1", "run-p1", result("p1", {}))

    assert task.ready_subtasks() == []  # p3 still waits for p2

    task.record_success("p2", "run-p2", result("p2", {}))
    assert [s.id for s in task.ready_subtasks()] == ["p3"]


def test_files_for_overlays_dependency_outputs_on_the_repo_snapshot() -> None:
    task = new_task()
    first, second = two_step_plan()
    task.dispatch(first)
    task.start()
    changed = {"src/app.py": "def main():\n    return 2\n", "src/greet.py": "print('hi')\n"}
    task.record_success(first.id, "run-1", result(first.id, changed))

    files = task.files_for(second)

    assert files == {"README.md": "# app\n", **changed}
    assert task.files_for(first) == REPO_FILES  # no dependencies: the snapshot as submitted
    assert task.request["repo"]["files"] == REPO_FILES  # the snapshot itself is untouched


def test_dispatched_event_carries_the_files_the_subtask_sees() -> None:
    task = new_task()
    first, second = two_step_plan()
    task.dispatch(first)
    task.start()
    task.record_success(first.id, "run-1", result(first.id, {"src/greet.py": "print('hi')\n"}))
    task.collect_events()

    task.dispatch(second)

    (event,) = task.collect_events()
    payload = event_payload(event)
    assert EventTypes.name(type(event)) == "task.subtask_dispatched"
    assert payload["subtask_id"] == second.id
    assert payload["agent_type"] == "test"
    assert payload["description"] == "Write tests for: Add a greeting"
    assert payload["files"] == {**REPO_FILES, "src/greet.py": "print('hi')\n"}
    assert payload["config"] == request()["config"]
    assert payload["attempt"] == 1


def test_dispatching_the_same_subtask_twice_emits_once() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.dispatch(first)

    assert names(task.collect_events()) == ["task.submitted", "task.subtask_dispatched"]
    assert task.dispatched == [first.id]


def test_subtask_lookup_of_an_unknown_id_raises() -> None:
    task = new_task()

    with pytest.raises(IllegalTransition):
        task.subtask("nope")
    with pytest.raises(IllegalTransition):
        task.record_success("nope", "run-x", result("nope", {}))


# --- illegal transitions -------------------------------------------------------------------


def test_approve_when_not_in_review_raises() -> None:
    task = new_task()
    task.dispatch(two_step_plan()[0])
    task.start()

    with pytest.raises(IllegalTransition):
        task.approve("ok")
    assert task.status == "running"


def test_complete_when_not_approved_raises() -> None:
    task = in_review()

    with pytest.raises(IllegalTransition):
        task.complete("https://example.invalid/pr/1", None)
    assert task.status == "review"


def test_fail_when_terminal_raises() -> None:
    task = new_task()
    task.cancel("user asked")

    with pytest.raises(IllegalTransition):
        task.fail("boom")
    assert task.status == "cancelled"


def test_cancel_when_terminal_raises() -> None:
    task = in_review()
    task.approve(None)
    task.complete(None, None)

    with pytest.raises(IllegalTransition):
        task.cancel("too late")
    assert task.status == "completed"


def test_request_review_before_every_subtask_succeeded_raises() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.record_success(first.id, "run-1", result(first.id, {}))

    with pytest.raises(IllegalTransition):
        task.request_review()
    assert task.status == "running"


def test_dispatch_after_review_raises() -> None:
    task = in_review()

    with pytest.raises(IllegalTransition):
        task.dispatch(two_step_plan()[0])


def test_reject_and_revise_need_review() -> None:
    task = new_task()

    with pytest.raises(IllegalTransition):
        task.reject("no")
    with pytest.raises(IllegalTransition):
        task.revise("again", uuid.uuid4())
    assert task.status == "pending"


# --- results, rejection, revision, cancellation --------------------------------------------


def test_record_success_is_idempotent() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.record_success(first.id, "run-1", result(first.id, {"a.py": "1"}))
    assert names(task.collect_events())[-1] == "task.subtask_succeeded"

    task.record_success(first.id, "run-1", result(first.id, {"a.py": "2"}))

    assert task.collect_events() == []
    assert task.succeeded[first.id].output.files == {"a.py": "1"}


def test_record_success_after_the_task_ended_emits_nothing() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.cancel("user asked")
    task.collect_events()

    task.record_success(first.id, "run-1", result(first.id, {}))

    assert task.collect_events() == []
    assert task.status == "cancelled"


def test_a_failure_that_retrying_cannot_fix_fails_the_task_at_once() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.collect_events()

    task.attempt_failed(first.id, "run-1", 1, "anthropic returned HTTP 401", retryable=False, output=None)

    events = task.collect_events()
    assert names(events) == ["task.subtask_failed", "task.failed"]
    assert event_payload(events[0])["exhausted"] is False
    assert task.status == "failed"
    assert task.error == f"subtask {first.id} failed (not retryable): anthropic returned HTTP 401"


def test_a_retryable_failure_dispatches_the_next_attempt_from_its_changes_with_the_error() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.collect_events()

    broken = RunOutput(files={"src/app.py": "def main(:\n"}, summary="oops", deleted_files=["README.md"])
    task.attempt_failed(first.id, "run-1", 1, "src/app.py:1: SyntaxError", retryable=True, output=broken)

    (event,) = task.collect_events()
    assert names([event]) == ["task.subtask_dispatched"]
    payload = event_payload(event)
    assert payload["attempt"] == 2
    assert payload["previous_error"] == "src/app.py:1: SyntaxError"
    assert payload["files"] == REPO_FILES, "the subtask's own starting point, unchanged"
    assert payload["previous_output"] == {
        "files": {"src/app.py": "def main(:\n"},
        "summary": "oops",
        "deletedFiles": ["README.md"],
    }, "the retry starts from the failed attempt's changes"
    assert task.status == "running"
    assert task.attempts[first.id] == 2


def test_retries_stop_at_max_retries_and_say_so() -> None:
    req = request()
    req["config"]["maxRetries"] = 1
    task = Task.submit(uuid.uuid4(), WORKSPACE, req, two_step_plan())
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.attempt_failed(first.id, "run-1", 1, "SyntaxError", retryable=True, output=None)
    task.collect_events()

    task.attempt_failed(first.id, "run-2", 2, "SyntaxError again", retryable=True, output=None)

    events = task.collect_events()
    assert names(events) == ["task.subtask_failed", "task.failed"]
    assert event_payload(events[0]) | {} == {
        "subtask_id": first.id,
        "run_id": "run-2",
        "error": "SyntaxError again",
        "attempts": 2,
        "exhausted": True,
    }
    assert task.error == f"subtask {first.id} failed (after 2 attempt(s), retries exhausted): SyntaxError again"


def test_a_failure_of_a_superseded_attempt_is_stale() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.attempt_failed(first.id, "run-1", 1, "SyntaxError", retryable=True, output=None)
    task.collect_events()

    task.attempt_failed(first.id, "run-1", 1, "SyntaxError", retryable=True, output=None)  # redelivered

    assert task.collect_events() == []
    assert task.attempts[first.id] == 2


def test_a_chained_task_waits_then_starts_from_its_parents_changes() -> None:
    parent = in_review()
    parent.approve(None)
    parent.complete(None, "no pull request")
    req = request("Document the greeting")
    req["parentTaskId"] = str(parent.id)
    child = Task.submit(uuid.uuid4(), WORKSPACE, req, two_step_plan())
    child.collect_events()

    assert child.waiting_for_parent
    with pytest.raises(IllegalTransition):
        child.dispatch(two_step_plan()[0])

    child.start_after_parent(parent)

    events = child.collect_events()
    assert names(events) == ["task.parent_completed", "task.subtask_dispatched"]
    assert event_payload(events[0])["changes"] == msgspec.to_builtins(parent.changes())
    expected = dict(REPO_FILES) | parent.changes().files
    assert event_payload(events[1])["files"] == expected
    assert child.status == "assigned"


def test_task_changes_fold_the_subtasks_outputs_in_plan_order() -> None:
    task = new_task()
    first, second = two_step_plan()
    task.dispatch(first)
    task.start()
    task.record_success(first.id, "r1", result(first.id, {"a.py": "1", "b.py": "1"}))
    task.dispatch(second)
    task.record_success(second.id, "r2", result(second.id, {"b.py": "2"}, deleted=["README.md"]))

    assert task.changes() == Changes(files={"a.py": "1", "b.py": "2"}, deleted=["README.md"])
    assert [s.summary for s in task.summaries()] == ["changed 2 file(s)", "changed 1 file(s)"]


def test_reject_fails_the_task_with_the_feedback_as_error() -> None:
    task = in_review()
    task.collect_events()

    task.reject("does not compile")

    assert names(task.collect_events()) == ["task.failed"]
    assert task.status == "failed"
    assert task.error == "does not compile"


def test_reject_without_feedback_still_gives_a_reason() -> None:
    task = in_review()

    task.reject(None)

    assert task.status == "failed"
    assert task.error == "rejected by reviewer"


def test_revise_links_the_revision_and_fails_the_task() -> None:
    task = in_review()
    task.collect_events()
    revision_id = derived_id("revision", task.id)

    task.revise("use f-strings", revision_id)

    events = task.collect_events()
    assert names(events) == ["task.revision_requested", "task.failed"]
    assert event_payload(events[0]) == {"feedback": "use f-strings", "revision_id": str(revision_id)}
    assert task.revised_by == str(revision_id)
    assert task.status == "failed"
    assert task.error == "revision requested: use f-strings"


def test_cancel_records_the_reason() -> None:
    task = new_task()
    task.dispatch(two_step_plan()[0])

    task.cancel("user asked")

    assert task.status == "cancelled"
    assert task.error == "user asked"


# --- events on the wire --------------------------------------------------------------------


def test_event_type_names_and_workspace() -> None:
    task = in_review()
    task.approve(None)
    task.complete("https://github.com/acme/app/pull/7", None)

    events = task.collect_events()

    assert names(events) == [
        "task.submitted",
        "task.subtask_dispatched",
        "task.started",
        "task.subtask_succeeded",
        "task.subtask_dispatched",
        "task.subtask_succeeded",
        "task.review_requested",
        "task.approved",
        "task.completed",
    ]
    assert {e.workspace_id for e in events} == {WORKSPACE}
    assert [e.originator_version for e in events] == list(range(1, len(events) + 1))


def test_failure_events_carry_the_workspace_too() -> None:
    task = in_review()
    task.revise("more", uuid.uuid4())
    events = task.collect_events()

    assert "task.revision_requested" in names(events)
    assert all(e.workspace_id == WORKSPACE for e in events)


def test_submitted_payload_is_request_subtasks_and_revision_of() -> None:
    task = Task.submit(uuid.uuid4(), WORKSPACE, request(), two_step_plan(), revision_of="prev")

    (event,) = task.collect_events()

    subtasks = [
        {"id": "aaaa0001", "agentType": "codegen", "description": "Add a greeting", "dependencies": []},
        {
            "id": "bbbb0002",
            "agentType": "test",
            "description": "Write tests for: Add a greeting",
            "dependencies": ["aaaa0001"],
        },
    ]
    assert event_payload(event) == {"request": request(), "subtasks": subtasks, "revision_of": "prev", "retry_of": None}


def test_reconstructing_from_events_gives_the_same_state() -> None:
    task = in_review()
    task.approve("ok")
    task.complete("https://github.com/acme/app/pull/7", None)
    events = task.collect_events()

    rebuilt = replay(events)

    assert rebuilt.id == task.id
    assert rebuilt.version == task.version
    assert rebuilt.status == "completed"
    assert rebuilt.pr_url == task.pr_url
    assert rebuilt.dispatched == task.dispatched
    assert rebuilt.succeeded == task.succeeded


def test_reconstructing_a_revised_task() -> None:
    task = in_review()
    revision_id = uuid.uuid4()
    task.revise("again", revision_id)

    rebuilt = replay(task.collect_events())

    assert rebuilt.status == "failed"
    assert rebuilt.revised_by == str(revision_id)
    assert rebuilt.error == "revision requested: again"


def test_a_late_failure_of_a_subtask_that_succeeded_changes_nothing() -> None:
    task = in_review()
    task.collect_events()
    first = task.subtasks[0].id

    task.attempt_failed(first, "stale-run", 1, "timed out", retryable=False, output=None)

    assert task.status == "review"
    assert task.collect_events() == []


def test_a_failure_in_review_or_later_is_stale() -> None:
    task = in_review()
    task.approve(None)
    task.collect_events()

    task.attempt_failed(task.subtasks[1].id, "other-run", 1, "boom", retryable=False, output=None)

    assert task.status == "approved"
    assert task.collect_events() == []


def parallel_plan() -> list[PlannedSubtask]:
    return [
        planned("aaaa0001", "codegen", "One"),
        planned("bbbb0002", "codegen", "Two"),
        planned("cccc0003", "review", "Both", "aaaa0001", "bbbb0002"),
    ]


def test_a_budget_pause_lets_running_subtasks_finish_and_resume_dispatches_what_waits() -> None:
    task = Task.submit(uuid.uuid4(), WORKSPACE, request(), parallel_plan())
    one, two, both = parallel_plan()
    task.dispatch(one)
    task.dispatch(two)
    task.start()
    cap = BudgetCap(cap="workspace", limit_usd=1.0, spent_usd=1.0, estimate_usd=0.1)

    task.pause(one.id, "run-1", 1, cap, RunOutput(files={"a.py": "1"}))
    task.record_success(two.id, "run-2", result(two.id, {"b.py": "2"}))
    assert task.status == "paused", "a result that lands while paused does not unpause the task"
    task.collect_events()

    task.resume()

    events = task.collect_events()
    assert names(events) == ["task.resumed", "task.subtask_dispatched"]
    assert event_payload(events[1])["subtask_id"] == one.id and event_payload(events[1])["attempt"] == 2
    assert event_payload(events[1])["previous_output"] == {"files": {"a.py": "1"}, "summary": ""}
    assert task.status == "running"
    task.record_success(one.id, "run-3", result(one.id, {"a.py": "1"}))
    assert [s.id for s in task.ready_subtasks()] == [both.id]


def test_attempts_a_budget_pause_used_are_not_self_heal_retries() -> None:
    req = request()
    req["config"]["maxRetries"] = 1
    task = Task.submit(uuid.uuid4(), WORKSPACE, req, two_step_plan())
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.pause(first.id, "run-1", 1, BudgetCap(cap="task", limit_usd=1.0, spent_usd=1.0, estimate_usd=0.1), None)
    task.resume()  # attempt 2
    task.collect_events()

    task.attempt_failed(first.id, "run-2", 2, "SyntaxError", retryable=True, output=None)

    assert names(task.collect_events()) == ["task.subtask_dispatched"], "its one self-heal retry is still there"


# --- the dispatch gate (a workspace's concurrency cap) ---------------------------------------


def gate(answer: DispatchGate) -> tuple[DispatchGate, list[str]]:
    """A dispatch gate as the planner gives one, answering `answer`; and the subtask ids it is
    asked about."""
    asked: list[str] = []

    def ask(task: Task, subtask_id: str) -> bool:
        asked.append(subtask_id)
        return answer(task, subtask_id)

    return ask, asked


def no_slot(task: Task, subtask_id: str) -> bool:
    """The gate of a workspace whose cap is reached."""
    return False


def test_a_subtask_the_gate_holds_back_queues_with_what_its_dispatch_would_carry() -> None:
    task = new_task()
    task.collect_events()
    first = two_step_plan()[0]
    closed, asked = gate(lambda task, subtask_id: False)
    task.dispatch_ready(closed)

    events = task.collect_events()
    assert asked == [first.id]
    assert names(events) == ["task.subtask_queued"]
    assert event_payload(events[0]) == {
        "subtask_id": first.id,
        "attempt": 1,
        "error": None,
        "previous": None,
        "handover": 0,
        "previous_run_id": None,
    }
    assert task.status == "pending", "nothing went to an executor yet"
    task.dispatch_ready(closed)
    assert task.collect_events() == [], "a queued subtask is not dispatched twice"


def test_a_released_subtask_is_dispatched_as_it_would_have_been() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch_ready(no_slot)
    task.collect_events()

    assert task.release(first.id) is True

    events = task.collect_events()
    assert names(events) == ["task.subtask_dispatched"]
    assert event_payload(events[0])["subtask_id"] == first.id and event_payload(events[0])["attempt"] == 1
    assert event_payload(events[0])["files"] == REPO_FILES
    assert task.status == "assigned"
    assert task.release(first.id) is False, "released once"


def test_a_retry_the_gate_holds_back_keeps_its_attempt_error_and_changes() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch(first)
    task.start()
    task.attempt_failed(
        first.id, "run-1", 1, "SyntaxError", retryable=True, output=RunOutput(files={"a.py": "x"}), gate=no_slot
    )
    task.collect_events()

    assert task.release(first.id) is True

    (dispatched,) = task.collect_events()
    payload = event_payload(dispatched)
    assert (payload["attempt"], payload["previous_error"]) == (2, "SyntaxError")
    assert payload["previous_output"] == {"files": {"a.py": "x"}, "summary": ""}


def test_a_queued_subtask_of_an_ended_task_is_not_released() -> None:
    task = new_task()
    task.dispatch_ready(no_slot)
    task.cancel("the workspace was purged")
    task.collect_events()

    assert task.release(two_step_plan()[0].id) is False
    assert task.collect_events() == []


def test_a_queued_subtask_of_a_paused_task_is_released_and_pauses_with_the_others() -> None:
    # The rule: a paused task's queued subtask still starts when its turn comes (holding the
    # queue's head would stop every other task of the workspace). Its run meets the budget check
    # before its first model call, is stopped there, and resumes with the task's other subtasks.
    task = Task.submit(uuid.uuid4(), WORKSPACE, request(), parallel_plan())
    one, two, _ = parallel_plan()
    task.dispatch_ready(lambda task, subtask_id: subtask_id == one.id)
    task.start()
    cap = BudgetCap(cap="task", limit_usd=1.0, spent_usd=1.0, estimate_usd=0.1)
    task.pause(one.id, "run-1", 1, cap, None)
    task.collect_events()

    assert task.release(two.id) is True
    assert names(task.collect_events()) == ["task.subtask_dispatched"]
    assert task.status == "paused"
    task.pause(two.id, "run-2", 1, cap, None)
    task.collect_events()
    task.resume(lambda task, subtask_id: True)

    events = task.collect_events()
    assert names(events) == ["task.resumed", "task.subtask_dispatched", "task.subtask_dispatched"]
    assert [event_payload(e)["subtask_id"] for e in events[1:]] == [one.id, two.id]


def test_replaying_a_gated_task_gives_the_same_state() -> None:
    task = new_task()
    first = two_step_plan()[0]
    task.dispatch_ready(no_slot)
    task.release(first.id)
    task.start()

    assert vars(replay(task.collect_events())) == {**vars(task), "_pending_events": []}


def test_a_request_stored_without_max_retries_retries_as_the_contract_says() -> None:
    # One default, the contract's (spec 000's example: three self-heal retries), not the domain's own.
    req = request()
    del req["config"]["maxRetries"]
    task = Task.submit(uuid.uuid4(), WORKSPACE, req, two_step_plan())

    assert task.max_attempts() == 1 + DEFAULT_MAX_RETRIES == 4
