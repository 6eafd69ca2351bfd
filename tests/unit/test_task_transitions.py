"""The task view's times and transitions (spec 003): when a task was queued, first ran and ended,
and a transition for each status change, carrying those times as they stood then."""

from __future__ import annotations

from contracts.events import typed
from libs.readmodels.task_listing import summary_of
from libs.readmodels.task_view import TaskView
from tests.unit.test_task_view import CODEGEN, REQUEST, T0, TASK_ID, WORKSPACE, Log, fold, happy_path


def test_each_status_change_is_a_transition_with_the_times_so_far_and_nothing_else_is() -> None:
    view = fold(happy_path(Log()))

    moves = [(t["previous_status"], t["status"], t["occurred_at"]) for t in view.transitions]
    assert moves == [
        (None, "pending", T0),
        ("pending", "assigned", T0 + 10),
        ("assigned", "running", T0 + 20),
        # the second subtask's result and dispatch, and the charges, change no status
        ("running", "review", T0 + 80),
        ("review", "approved", T0 + 90),
        ("approved", "completed", T0 + 100),
    ]
    times = [(t["queued_at"], t["started_at"], t["completed_at"]) for t in view.transitions]
    assert times == [(T0, None, None)] * 2 + [(T0, T0 + 20, None)] * 3 + [(T0, T0 + 20, T0 + 100)]
    assert {t["task_id"] for t in view.transitions} == {TASK_ID}
    assert {t["workspace_id"] for t in view.transitions} == {WORKSPACE}
    assert [t["seq"] for t in view.transitions] == [1, 2, 3, 9, 10, 11]
    assert all(t["error"] is None for t in view.transitions)
    assert (view.state["startedAt"], view.state["completedAt"]) == (T0 + 20, T0 + 100)


def test_a_failure_ends_the_task_with_its_error_and_a_resume_does_not_move_its_start() -> None:
    log = Log()
    events = [
        log.submitted(T0),
        log.dispatched(CODEGEN, T0 + 10),
        log.event("task.started", {}, T0 + 20),
        log.event(
            "task.paused",
            {
                "subtask_id": CODEGEN,
                "run_id": "run-1",
                "attempt": 1,
                "cap": {"cap": "task", "limit_usd": 1.0, "spent_usd": 0.9, "estimate_usd": 0.2},
                "output": None,
            },
            T0 + 30,
        ),
        log.event("task.resumed", {"subtask_ids": [CODEGEN]}, T0 + 40),
        log.event("task.failed", {"error": "subtask aaaa0001 failed (not retryable): boom"}, T0 + 50),
    ]

    view = fold(events)

    last = view.transitions[-1]
    assert [t["status"] for t in view.transitions][-3:] == ["paused", "running", "failed"]
    assert (last["started_at"], last["completed_at"]) == (T0 + 20, T0 + 50)
    assert last["error"] == "subtask aaaa0001 failed (not retryable): boom"


def test_a_task_stopped_before_it_ran_ended_without_starting_and_says_why() -> None:
    log = Log()
    view = fold([log.submitted(T0), log.event("task.cancelled", {"reason": "stopped on request"}, T0 + 5)])

    (_, cancelled) = view.transitions
    assert (cancelled["status"], cancelled["error"]) == ("cancelled", "stopped on request")
    assert (cancelled["started_at"], cancelled["completed_at"]) == (None, T0 + 5)


def test_a_retry_and_the_task_it_retries_name_each_other() -> None:
    log = Log()
    old = fold(
        [
            log.submitted(T0),
            log.event("task.failed", {"error": "no"}, T0 + 5),
            log.event("task.retried", {"retry_id": "new-task"}, T0 + 9),
        ]
    )
    payload = {"request": REQUEST, "subtasks": [], "revision_of": None, "retry_of": TASK_ID}
    new = TaskView.submitted(typed(Log().event("task.submitted", payload, T0 + 9, aggregate_id="new-task")))

    assert old.state["retriedBy"] == "new-task" and old.state["status"] == "failed"
    assert len(old.transitions) == 2, "linking its retry is no status change"
    assert new.state["retryOf"] == TASK_ID


def test_a_summary_shows_the_request_without_its_files_and_the_times_and_links_of_the_state() -> None:
    view = fold(happy_path(Log()))
    request = {**REQUEST, "repo": {k: v for k, v in REQUEST["repo"].items() if k != "files"}}

    summary = summary_of((TASK_ID, "completed", T0, T0 + 100, request, view.state))

    assert summary["repo"] == {"owner": "acme", "repo": "app", "branch": "feature", "baseBranch": "main"}
    assert (summary["agentType"], summary["description"]) == ("codegen", "Add a greeting")
    assert (summary["queuedAt"], summary["startedAt"], summary["completedAt"]) == (T0, T0 + 20, T0 + 100)
    assert summary["prUrl"] == "https://github.com/acme/app/pull/7" and summary["error"] is None
    assert summary["cost"]["totalTokens"] == 2340 + 890 + 1000 + 500
    assert summary["retryOf"] is None and summary["parentTaskId"] is None
