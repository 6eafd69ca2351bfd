"""The task view: events folded into the TaskState that `GET /tasks/{id}` serves."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import msgspec
import pytest

from contracts.events import EventEnvelope, typed
from contracts.payloads.shapes import PlannedSubtask, RunOutput, SubtaskResult
from contracts.tasks import TaskState, TaskStatus
from libs.domain.base import EventTypes, event_payload
from libs.domain.ledger import Ledger
from libs.domain.task import Task
from libs.readmodels.task_view import TaskView
from services.planner.plans import plan

WORKSPACE = "ws-view"
TASK_ID = "9d4c2b1a-2222-4b4b-9c9c-000000000001"
LEDGER_ID = "9d4c2b1a-2222-4b4b-9c9c-0000000000ff"
CODEGEN, TEST = "aaaa0001", "bbbb0002"
T0 = 1_760_000_000_000

REQUEST: dict[str, Any] = {
    "description": "Add a greeting",
    "agentType": "codegen",
    "repo": {
        "owner": "acme",
        "repo": "app",
        "branch": "feature",
        "baseBranch": "main",
        "files": {"src/app.py": "def main():\n    return 1\n"},
    },
    "config": {
        "model": "claude-sonnet-4-20250514",
        "provider": "anthropic",
        "maxTokens": 4096,
        "temperature": 0.0,
        "maxRetries": 3,
    },
    "parentTaskId": None,
}
SUBTASKS: list[dict[str, Any]] = [
    {"id": CODEGEN, "agentType": "codegen", "description": "Add a greeting", "dependencies": []},
    {"id": TEST, "agentType": "test", "description": "Write tests for: Add a greeting", "dependencies": [CODEGEN]},
]


APPROVED: dict[str, Any] = {
    "feedback": "ship it",
    "repo": {k: v for k, v in REQUEST["repo"].items() if k != "files"},
    "title": "Add a greeting",
    "changes": {"files": {}, "deleted": []},
    "summaries": [],
}


FAILED_ONCE: dict[str, Any] = {"attempts": 1, "exhausted": False}


class Log:
    """Builds envelopes with increasing seq and versions, at chosen times."""

    def __init__(self) -> None:
        self.seq = itertools.count(1)
        self.versions: dict[str, itertools.count[int]] = {}

    def event(
        self, type_: str, payload: dict[str, Any], at: int, aggregate_id: str = TASK_ID, workspace: str = WORKSPACE
    ) -> EventEnvelope:
        version = self.versions.setdefault(aggregate_id, itertools.count(1))
        return EventEnvelope(
            seq=next(self.seq),
            type=type_,
            workspace_id=workspace,
            aggregate_id=aggregate_id,
            version=next(version),
            occurred_at=at,
            payload=payload,
        )

    def submitted(self, at: int = T0, revision_of: str | None = None) -> EventEnvelope:
        return self.event("task.submitted", {"request": REQUEST, "subtasks": SUBTASKS, "revision_of": revision_of}, at)

    def dispatched(self, subtask_id: str, at: int) -> EventEnvelope:
        subtask = next(s for s in SUBTASKS if s["id"] == subtask_id)
        payload = {
            "subtask_id": subtask_id,
            "agent_type": subtask["agentType"],
            "description": subtask["description"],
            "files": REQUEST["repo"]["files"],
            "config": REQUEST["config"],
            "attempt": 1,
        }
        return self.event("task.subtask_dispatched", payload, at)

    def succeeded(self, subtask_id: str, at: int, files: dict[str, str] | None = None) -> EventEnvelope:
        agent_type = next(s["agentType"] for s in SUBTASKS if s["id"] == subtask_id)
        result = {
            "subtaskId": subtask_id,
            "agentType": agent_type,
            "success": True,
            "output": {"files": files or {}, "summary": f"{agent_type} done"},
            "durationMs": 1500,
        }
        return self.event(
            "task.subtask_succeeded", {"subtask_id": subtask_id, "run_id": f"run-{subtask_id}", "result": result}, at
        )

    def charged(
        self,
        subtask_id: str,
        at: int,
        input_tokens: int,
        output_tokens: int,
        cost_usd: float,
        run_id: str | None = None,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        estimated: bool = False,
    ) -> EventEnvelope:
        payload = {
            "task_id": TASK_ID,
            "run_id": run_id or f"run-{subtask_id}",
            "subtask_id": subtask_id,
            "model": "claude-sonnet-4-20250514",
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "cost_usd": cost_usd,
            "cpu_time_ms": 12,
            "subrequests": 1,
            "priced": True,
            "estimated": estimated,
        }
        return self.event("ledger.charged", payload, at, aggregate_id=LEDGER_ID)


def fold(events: list[EventEnvelope]) -> TaskView:
    """The view of these envelopes, each typed as the projector types it."""
    view = TaskView.submitted(typed(events[0]))
    for e in events[1:]:
        view.apply(typed(e))
    return view


def to_task_state(view: TaskView) -> TaskState:
    """As served: the state with the request the row keeps apart (`schema.TASK_STATE`)."""
    return msgspec.convert({**view.state, "request": view.request}, TaskState)


def happy_path(log: Log) -> list[EventEnvelope]:
    """A codegen task whose charges arrive before the results they belong to."""
    return [
        log.submitted(T0),
        log.dispatched(CODEGEN, T0 + 10),
        log.event("task.started", {}, T0 + 20),
        log.charged(CODEGEN, T0 + 30, input_tokens=2340, output_tokens=890, cost_usd=0.02037),
        log.succeeded(CODEGEN, T0 + 40, files={"src/greet.py": "print('hi')\n"}),
        log.dispatched(TEST, T0 + 50),
        log.charged(TEST, T0 + 60, input_tokens=1000, output_tokens=500, cost_usd=0.0105),
        log.succeeded(TEST, T0 + 70, files={"tests/test_greet.py": "def test(): pass\n"}),
        log.event("task.review_requested", {}, T0 + 80),
        log.event("task.approved", APPROVED, T0 + 90),
        log.event("task.completed", {"pr_url": "https://github.com/acme/app/pull/7", "note": None}, T0 + 100),
    ]


# --- statuses ------------------------------------------------------------------------------


def test_submitted_task_is_pending_with_no_results_and_no_cost() -> None:
    view = TaskView.submitted(typed(Log().submitted(T0)))

    s = view.state
    assert s["id"] == TASK_ID
    assert s["status"] == "pending"
    # The request is written once, apart from the state every step rewrites.
    assert "request" not in s and view.request == REQUEST
    assert s["subtasks"] == SUBTASKS
    assert s["results"] == {}
    assert s["cost"]["totalTokens"] == 0
    assert s["cost"]["estimatedCostUsd"] == 0.0
    assert s["createdAt"] == s["updatedAt"] == T0
    assert "revisionOf" not in s


def test_statuses_follow_the_events() -> None:
    events = happy_path(Log())
    view = TaskView.submitted(typed(events[0]))
    statuses = [view.state["status"]]
    for e in events[1:]:
        view.apply(typed(e))
        statuses.append(view.state["status"])

    assert statuses == [
        "pending",
        "assigned",  # task.subtask_dispatched
        "running",  # task.started
        "running",  # ledger.charged
        "running",  # task.subtask_succeeded
        "running",  # task.subtask_dispatched of the second subtask keeps it running
        "running",
        "running",
        "review",
        "approved",
        "completed",
    ]
    assert view.state["prUrl"] == "https://github.com/acme/app/pull/7"


def test_failed_task_carries_its_error() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 1),
            log.event("task.started", {}, T0 + 2),
            log.event("task.failed", {"error": "subtask aaaa0001 failed: model timed out"}, T0 + 3),
        ]
    )

    assert view.state["status"] == "failed"
    assert view.state["error"] == "subtask aaaa0001 failed: model timed out"
    assert to_task_state(view).status is TaskStatus.FAILED


def test_cancelled_task_carries_its_reason_as_error() -> None:
    log = Log()
    view = fold([log.submitted(T0), log.event("task.cancelled", {"reason": "user asked"}, T0 + 1)])

    assert view.state["status"] == "cancelled"
    assert view.state["error"] == "user asked"


def test_subtask_failure_is_reported_as_an_unsuccessful_result() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 1),
            log.event("task.started", {}, T0 + 2),
            log.charged(CODEGEN, T0 + 3, input_tokens=10, output_tokens=0, cost_usd=0.00003),
            log.event(
                "task.subtask_failed",
                {"subtask_id": CODEGEN, "run_id": "run-1", "error": "model timed out"} | FAILED_ONCE,
                T0 + 4,
            ),
            log.event("task.failed", {"error": "subtask aaaa0001 failed: model timed out"}, T0 + 5),
        ]
    )

    result = to_task_state(view).results[CODEGEN]
    assert result.success is False
    assert result.error == "model timed out"
    assert result.agent_type == "codegen"
    assert result.cost.input_tokens == 10


def test_revision_links_both_ways() -> None:
    log = Log()
    revision_id = "9d4c2b1a-2222-4b4b-9c9c-000000000002"
    original = fold(
        [
            log.submitted(T0),
            log.event("task.review_requested", {}, T0 + 1),
            log.event("task.revision_requested", {"feedback": "more tests", "revision_id": revision_id}, T0 + 2),
            log.event("task.failed", {"error": "revision requested: more tests"}, T0 + 3),
        ]
    )
    revision = TaskView.submitted(typed(Log().submitted(T0 + 4, revision_of=TASK_ID)))

    assert original.state["revisedBy"] == revision_id
    assert original.state["status"] == "failed"
    assert original.state["error"] == "revision requested: more tests"
    assert revision.state["revisionOf"] == TASK_ID
    assert to_task_state(original).revised_by == revision_id
    assert to_task_state(revision).revision_of == TASK_ID


# --- costs ---------------------------------------------------------------------------------


def test_charge_before_result_is_attached_when_the_result_arrives() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 1),
            log.event("task.started", {}, T0 + 2),
            log.charged(CODEGEN, T0 + 3, input_tokens=2340, output_tokens=890, cost_usd=0.02037),
        ]
    )
    assert CODEGEN not in view.state["results"]

    view.apply(typed(log.succeeded(CODEGEN, T0 + 4)))

    cost = view.state["results"][CODEGEN]["cost"]
    assert cost["inputTokens"] == 2340
    assert cost["outputTokens"] == 890
    assert cost["totalTokens"] == 3230
    assert cost["estimatedCostUsd"] == pytest.approx(0.02037)
    assert cost["cpuTimeMs"] == 12
    assert cost["subrequests"] == 1


def test_charge_after_result_updates_that_result() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 1),
            log.event("task.started", {}, T0 + 2),
            log.succeeded(CODEGEN, T0 + 3),
        ]
    )
    assert view.state["results"][CODEGEN]["cost"]["totalTokens"] == 0

    view.apply(typed(log.charged(CODEGEN, T0 + 4, input_tokens=100, output_tokens=40, cost_usd=0.0009)))

    assert view.state["results"][CODEGEN]["cost"]["totalTokens"] == 140
    assert view.state["results"][CODEGEN]["cost"]["estimatedCostUsd"] == pytest.approx(0.0009)


def test_each_result_gets_only_its_own_subtask_charges() -> None:
    view = fold(happy_path(Log()))

    results = view.state["results"]
    assert results[CODEGEN]["cost"]["totalTokens"] == 2340 + 890
    assert results[TEST]["cost"]["totalTokens"] == 1000 + 500
    assert results[CODEGEN]["cost"]["estimatedCostUsd"] == pytest.approx(0.02037)
    assert results[TEST]["cost"]["estimatedCostUsd"] == pytest.approx(0.0105)


def test_task_cost_is_the_sum_of_its_charges() -> None:
    view = fold(happy_path(Log()))

    cost = view.state["cost"]
    assert cost["inputTokens"] == 2340 + 1000
    assert cost["outputTokens"] == 890 + 500
    assert cost["totalTokens"] == cost["inputTokens"] + cost["outputTokens"]
    assert cost["estimatedCostUsd"] == pytest.approx(0.02037 + 0.0105)
    assert cost["cpuTimeMs"] == 24
    assert cost["subrequests"] == 2


def test_retried_subtask_accumulates_the_charges_of_every_attempt() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 1),
            log.event("task.started", {}, T0 + 2),
            log.charged(CODEGEN, T0 + 3, input_tokens=100, output_tokens=10, cost_usd=0.00045, run_id="run-a1"),
            log.charged(CODEGEN, T0 + 4, input_tokens=200, output_tokens=20, cost_usd=0.0009, run_id="run-a2"),
            log.succeeded(CODEGEN, T0 + 5),
        ]
    )

    assert view.state["results"][CODEGEN]["cost"]["totalTokens"] == 330
    assert view.state["results"][CODEGEN]["cost"]["estimatedCostUsd"] == pytest.approx(0.00135)
    assert view.state["cost"]["totalTokens"] == 330


def test_cache_tokens_count_as_input_tokens() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.charged(
                CODEGEN,
                T0 + 1,
                input_tokens=100,
                output_tokens=50,
                cost_usd=0.001,
                cache_read_tokens=1000,
                cache_write_tokens=200,
            ),
        ]
    )

    assert view.state["cost"]["inputTokens"] == 1300
    assert view.state["cost"]["totalTokens"] == 1350


def test_estimated_cost_does_not_drift_over_many_charges() -> None:
    log = Log()
    events = [log.submitted(T0)]
    events += [
        log.charged(CODEGEN, T0 + i, input_tokens=1, output_tokens=1, cost_usd=0.1, run_id=f"run-{i}")
        for i in range(1, 11)
    ]

    view = fold(events)

    assert view.state["cost"]["estimatedCostUsd"] == 1.0


def interrupted_then_healed(log: Log) -> list[EventEnvelope]:
    """The codegen's first attempt was interrupted with a call in flight (charged at its
    estimate); its second attempt and the test subtask were charged as counted."""
    return [
        log.submitted(T0),
        log.dispatched(CODEGEN, T0 + 1),
        log.event("task.started", {}, T0 + 2),
        log.charged(CODEGEN, T0 + 3, 812, 4096, cost_usd=0.063876, run_id="run-a1", estimated=True),
        log.charged(CODEGEN, T0 + 4, 1000, 200, cost_usd=0.006, run_id="run-a2"),
        log.succeeded(CODEGEN, T0 + 5),
        log.dispatched(TEST, T0 + 6),
        log.charged(TEST, T0 + 7, 1000, 200, cost_usd=0.006),
        log.succeeded(TEST, T0 + 8),
    ]


def test_an_estimated_charge_flags_its_subtasks_cost_and_the_tasks() -> None:
    view = fold(interrupted_then_healed(Log()))

    codegen, test = view.state["results"][CODEGEN]["cost"], view.state["results"][TEST]["cost"]
    assert codegen["estimated"] is True
    assert codegen["inputTokens"] == 1812 and codegen["outputTokens"] == 4296
    assert codegen["estimatedCostUsd"] == pytest.approx(0.069876)
    assert "estimated" not in test, "its charge was counted, not estimated"
    assert view.state["cost"]["estimated"] is True
    assert view.state["cost"]["estimatedCostUsd"] == pytest.approx(0.075876)


def test_the_estimate_flag_is_served_only_where_it_is_true() -> None:
    wire = msgspec.json.decode(msgspec.json.encode(to_task_state(fold(interrupted_then_healed(Log())))))

    assert wire["cost"]["estimated"] is True
    assert wire["results"][CODEGEN]["cost"]["estimated"] is True
    assert "estimated" not in wire["results"][TEST]["cost"]
    counted = msgspec.json.decode(msgspec.json.encode(to_task_state(fold(happy_path(Log())))))
    assert "estimated" not in counted["cost"], "a cost without an estimate reads as spec 000 has it"
    assert all("estimated" not in r["cost"] for r in counted["results"].values())


# --- times and the wire shape --------------------------------------------------------------


def test_updated_at_is_the_latest_occurred_at() -> None:
    log = Log()
    view = fold(
        [
            log.submitted(T0),
            log.dispatched(CODEGEN, T0 + 500),
            log.event("task.started", {}, T0 + 300),  # clocks of different services disagree
        ]
    )

    assert view.state["createdAt"] == T0
    assert view.state["updatedAt"] == T0 + 500


def test_updated_at_follows_the_last_event() -> None:
    view = fold(happy_path(Log()))

    assert view.state["createdAt"] == T0
    assert view.state["updatedAt"] == T0 + 100


def test_final_state_converts_to_the_spec_task_state() -> None:
    view = fold(happy_path(Log()))

    state = to_task_state(view)

    assert state.id == TASK_ID
    assert state.status is TaskStatus.COMPLETED
    assert state.pr_url == "https://github.com/acme/app/pull/7"
    assert state.request.description == "Add a greeting"
    assert state.request.repo.base_branch == "main"
    assert [s.id for s in state.subtasks] == [CODEGEN, TEST]
    assert state.subtasks[1].dependencies == [CODEGEN]
    assert set(state.results) == {CODEGEN, TEST}
    codegen = state.results[CODEGEN]
    assert codegen.success is True
    assert codegen.duration_ms == 1500
    assert codegen.output is not None
    assert codegen.output.files == {"src/greet.py": "print('hi')\n"}
    assert codegen.cost.total_tokens == 3230
    assert state.cost.total_tokens == 3230 + 1500
    assert state.error is None
    assert state.created_at == T0
    assert state.updated_at == T0 + 100


def test_every_intermediate_state_converts_too() -> None:
    events = happy_path(Log())
    view = TaskView.submitted(typed(events[0]))
    to_task_state(view)
    for e in events[1:]:
        view.apply(typed(e))
        assert to_task_state(view).status.value == view.state["status"]


def test_state_round_trips_through_json() -> None:
    view = fold(happy_path(Log()))

    wire = msgspec.json.encode(to_task_state(view))

    assert msgspec.json.decode(wire, type=TaskState) == to_task_state(view)
    decoded = msgspec.json.decode(wire)
    assert decoded["prUrl"] == "https://github.com/acme/app/pull/7"
    assert decoded["cost"]["totalTokens"] == 3230 + 1500


# --- the view reads what the aggregates write -----------------------------------------------


def envelopes_of(events: list[Any]) -> list[EventEnvelope]:
    """The envelopes the event store would serve for these domain events, in this order."""
    return [
        EventEnvelope(
            seq=seq,
            type=EventTypes.name(type(e)),
            workspace_id=e.workspace_id,
            aggregate_id=str(e.originator_id),
            version=e.originator_version,
            occurred_at=int(e.timestamp.timestamp() * 1000),
            payload=event_payload(e),
        )
        for seq, e in enumerate(events, start=1)
    ]


def test_view_folds_the_events_the_aggregates_emit() -> None:
    task_id = uuid.uuid4()
    task = Task.submit(task_id, WORKSPACE, REQUEST, plan(str(task_id), "codegen", "Add a greeting"))
    ledger = Ledger.open(WORKSPACE, str(task_id))
    events: list[Any] = task.collect_events() + ledger.collect_events()[1:]  # ledger.opened is no task event
    for subtask in task.subtasks:
        task.dispatch(subtask)
        task.start()
        ledger.charge(
            run_id=f"run-{subtask.id}",
            subtask_id=subtask.id,
            model="claude-sonnet-4-20250514",
            input_tokens=100,
            output_tokens=50,
            cache_read_tokens=0,
            cache_write_tokens=0,
            cost_usd=0.00105,
            cpu_time_ms=5,
            subrequests=1,
            priced=True,
        )
        output = RunOutput(files={f"{subtask.id}.py": "x = 1\n"}, summary="done")
        result = SubtaskResult(
            subtask_id=subtask.id, agent_type=subtask.agent_type, success=True, output=output, duration_ms=7
        )
        task.record_success(subtask.id, f"run-{subtask.id}", result)
        events += ledger.collect_events() + task.collect_events()  # the charge lands before the result
    task.request_review()
    task.approve(None)
    task.complete("https://github.com/acme/app/pull/8", None)
    events += task.collect_events()

    state = to_task_state(fold(envelopes_of(events)))

    assert state.id == str(task_id)
    assert state.status is TaskStatus.COMPLETED
    assert state.pr_url == "https://github.com/acme/app/pull/8"
    assert set(state.results) == {s.id for s in task.subtasks}
    assert all(r.cost.total_tokens == 150 for r in state.results.values())
    assert state.cost.total_tokens == 300
    assert state.cost.estimated_cost_usd == pytest.approx(0.0021)


def test_view_of_a_revised_task_from_aggregate_events() -> None:
    subtasks = msgspec.convert(SUBTASKS, list[PlannedSubtask])
    task = Task.submit(uuid.uuid4(), WORKSPACE, REQUEST, subtasks)
    for subtask in subtasks:
        task.dispatch(subtask)
        task.start()
        output = RunOutput(files={}, summary="ok")
        result = SubtaskResult(
            subtask_id=subtask.id, agent_type=subtask.agent_type, success=True, output=output, duration_ms=1
        )
        task.record_success(subtask.id, "run", result)
    task.request_review()
    revision_id = uuid.uuid4()
    task.revise("more tests", revision_id)

    state = to_task_state(fold(envelopes_of(task.collect_events())))

    assert state.status is TaskStatus.FAILED
    assert state.revised_by == str(revision_id)
    assert state.error == "revision requested: more tests"


def test_a_paused_task_stays_paused_when_another_subtask_finishes_and_shows_why() -> None:
    log = Log()
    cap = {"cap": "workspace", "limit_usd": 1.0, "spent_usd": 0.99, "estimate_usd": 0.05}
    events = [
        log.submitted(T0),
        log.dispatched(CODEGEN, T0 + 10),
        log.dispatched(TEST, T0 + 11),
        log.event("task.started", {}, T0 + 20),
        log.event(
            "task.paused",
            {"subtask_id": CODEGEN, "run_id": "r1", "attempt": 1, "cap": cap, "output": None},
            T0 + 30,
        ),
        log.succeeded(TEST, T0 + 40, files={}),
    ]

    state = fold(events).state

    assert state["status"] == "paused"
    assert state["paused"] == {
        "subtaskId": CODEGEN,
        "cap": "workspace",
        "limitUsd": 1.0,
        "spentUsd": 0.99,
        "estimateUsd": 0.05,
    }
    resumed = fold([*events, log.event("task.resumed", {"subtask_ids": [CODEGEN]}, T0 + 50)]).state
    assert resumed["status"] == "running" and "paused" not in resumed


def test_the_task_view_applies_typed_events_and_keeps_what_they_carry_as_they_carry_it() -> None:
    # The state is JSON in `rm_tasks`: the parts of a payload it keeps (the subtasks, a result)
    # must be what the event's JSON holds, so a rebuild with typed events writes the same rows:
    # an empty summary kept, a comment's null line kept, no default added or dropped.
    log = Log()
    output = {
        "files": {"src/a.py": {"digest": "sha256:" + "0" * 64, "size": 3}, "old.py": "inline\n"},
        "summary": "",
        "deletedFiles": ["src/gone.py"],
        "comments": [{"path": "src/a.py", "line": None, "body": "fine"}],
    }
    result = {
        "subtaskId": CODEGEN,
        "agentType": "codegen",
        "success": True,
        "output": output,
        "durationMs": 5,
        "attempts": 2,
    }
    planned = {
        "subtasks": SUBTASKS,
        "source": "llm",
        "fallback_reason": None,
        "usage": None,
        "provider": "anthropic",
        "model": "m",
        "duration_ms": 3,
    }
    view = fold(
        [
            log.event("task.submitted", {"request": REQUEST, "subtasks": [], "revision_of": None}, T0),
            log.event("task.planned", planned, T0 + 1),
            log.event("task.subtask_succeeded", {"subtask_id": CODEGEN, "run_id": "r", "result": result}, T0 + 2),
        ]
    )

    assert msgspec.json.encode(view.state["subtasks"]) == msgspec.json.encode(SUBTASKS)
    assert view.state["results"][CODEGEN] == {**result, "cost": view.state["results"][CODEGEN]["cost"]}
    assert view.state["results"][CODEGEN]["output"]["summary"] == ""
    assert view.state["plan"] == {"source": "llm"}
