"""Run, Gate, Ledger and PullRequest: deterministic ids and decisions taken exactly once."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.payloads.shapes import RunOutput
from libs.domain.base import EventTypes, event_payload
from libs.domain.errors import GateClosed, IllegalTransition
from libs.domain.gate import Gate, review_gate_id
from libs.domain.ledger import Ledger, ledger_id
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.domain.run import Run, run_id_for

WORKSPACE = "ws-aggregates"
TASK_ID = "3f2b8c1e-0000-4000-8000-000000000001"
OTHER_TASK_ID = "3f2b8c1e-0000-4000-8000-000000000002"
USAGE = {"input_tokens": 100, "output_tokens": 50}


def names(events: list[Any]) -> list[str]:
    return [EventTypes.name(type(e)) for e in events]


def start_run(task_id: str = TASK_ID, subtask_id: str = "aaaa0001", attempt: int = 1) -> Run:
    return Run.start(WORKSPACE, task_id, subtask_id, "codegen", attempt, "anthropic", "claude-sonnet-4-20250514")


def charge(ledger: Ledger, run_id: str, cost_usd: float, subtask_id: str = "aaaa0001") -> None:
    ledger.charge(
        run_id=run_id,
        subtask_id=subtask_id,
        model="claude-sonnet-4-20250514",
        input_tokens=2340,
        output_tokens=890,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=cost_usd,
        cpu_time_ms=15,
        subrequests=1,
        priced=True,
    )


# --- Run -----------------------------------------------------------------------------------


def test_run_id_is_deterministic_per_task_subtask_and_attempt() -> None:
    assert run_id_for(TASK_ID, "aaaa0001", 1) == run_id_for(TASK_ID, "aaaa0001", 1)
    assert start_run().id == run_id_for(TASK_ID, "aaaa0001", 1)
    assert start_run().id == start_run().id

    variants = {
        run_id_for(TASK_ID, "aaaa0001", 1),
        run_id_for(TASK_ID, "aaaa0001", 2),
        run_id_for(TASK_ID, "bbbb0002", 1),
        run_id_for(OTHER_TASK_ID, "aaaa0001", 1),
    }
    assert len(variants) == 4


def test_run_starts_with_its_identity() -> None:
    run = start_run(attempt=2)

    (event,) = run.collect_events()
    assert EventTypes.name(type(event)) == "run.started"
    assert event.workspace_id == WORKSPACE
    assert event_payload(event) == {
        "task_id": TASK_ID,
        "subtask_id": "aaaa0001",
        "agent_type": "codegen",
        "attempt": 2,
        "provider": "anthropic",
        "model": "claude-sonnet-4-20250514",
        "retry_of": None,
        # Started without a claim (as before leases): no lease fields.
        "session_id": None,
        "lease_until": None,
        "lease_ttl_s": None,
        "claim_token_hash": None,
        "handover": 0,
        "dispatch_seq": None,
        "previous_run_id": None,
        "first_call_estimate": None,
    }
    assert run.status == "started"


def test_run_succeeds_once() -> None:
    run = start_run()
    output = RunOutput(files={"a.py": "x = 1\n"}, summary="added a.py")
    run.succeed(output, USAGE, duration_ms=250, subrequests=1)

    with pytest.raises(IllegalTransition):
        run.succeed(output, USAGE, duration_ms=250, subrequests=1)
    with pytest.raises(IllegalTransition):
        run.fail("late failure", USAGE, duration_ms=1, subrequests=1)

    events = run.collect_events()
    assert names(events) == ["run.started", "run.succeeded"]
    assert run.status == "succeeded"
    payload = event_payload(events[1])
    assert payload["output"] == msgspec.to_builtins(output)
    assert payload["usage"] == USAGE
    assert payload["task_id"] == TASK_ID
    assert payload["model"] == "claude-sonnet-4-20250514"
    assert events[1].workspace_id == WORKSPACE


def test_run_fails_once() -> None:
    run = start_run()
    run.fail("provider returned 529", USAGE, duration_ms=40, subrequests=3)

    with pytest.raises(IllegalTransition):
        run.fail("again", USAGE, duration_ms=40, subrequests=3)
    with pytest.raises(IllegalTransition):
        run.succeed({"files": {}, "summary": ""}, USAGE, duration_ms=1, subrequests=1)

    events = run.collect_events()
    assert names(events) == ["run.started", "run.failed"]
    assert run.status == "failed"
    assert event_payload(events[1])["error"] == "provider returned 529"
    assert event_payload(events[1])["subrequests"] == 3


def call(run: Run, turn: int, usage: dict[str, int] = USAGE) -> None:
    """A model call that returned, and the tool call it asked for."""
    run.record_model_call(turn, True, 900, usage, "tool_use", 1, None)
    run.record_tool_call(f"call_{turn}", "write_file", True, "Wrote a.py", "a.py", 3, None)


FIRST_CALL = {"input_tokens": 812, "output_tokens": 4096}  # what the dispatch says its first call could use
THIRD_CALL = {"input_tokens": 1530, "output_tokens": 4096}


def interrupted_payload(run: Run) -> dict[str, Any]:
    """The `run.failed` that interrupting the run records."""
    run.collect_events()
    run.interrupt(FIRST_CALL)
    (failed,) = run.collect_events()
    assert EventTypes.name(type(failed)) == "run.failed" and run.status == "failed"
    return event_payload(failed)


def test_a_model_call_after_the_first_is_marked_as_started_with_its_estimate() -> None:
    run = start_run()
    call(run, 1)
    run.start_model_call(2, THIRD_CALL)

    events = run.collect_events()
    assert names(events) == ["run.started", "run.model_called", "run.tool_called", "run.model_call_started"]
    assert event_payload(events[-1]) == {
        "task_id": TASK_ID,
        "subtask_id": "aaaa0001",
        "turn": 2,
        "estimated_usage": THIRD_CALL,
    }


def test_an_interrupted_run_is_charged_its_started_call_at_the_estimate() -> None:
    run = start_run()
    call(run, 1)
    run.start_model_call(2, USAGE)
    call(run, 2)
    run.start_model_call(3, THIRD_CALL)  # in flight when the executor stopped

    payload = interrupted_payload(run)

    assert payload["error"] == "the run was interrupted (its executor stopped)"
    assert payload["retryable"] is True
    assert payload["estimated_usage"] == THIRD_CALL
    assert payload["usage"] == {"input_tokens": 100 + 100 + 1530, "output_tokens": 50 + 50 + 4096}
    assert payload["subrequests"] == 5, "two recorded model calls, their two tool calls, the started call"


def test_an_interrupted_run_whose_calls_are_all_recorded_has_no_estimate() -> None:
    # Stopped while it waited for a person or its test collection: nothing was in flight.
    run = start_run()
    call(run, 1)
    run.start_model_call(2, THIRD_CALL)
    call(run, 2)

    payload = interrupted_payload(run)

    assert payload["estimated_usage"] is None
    assert payload["usage"] == {"input_tokens": 200, "output_tokens": 100}
    assert payload["subrequests"] == 4


def test_an_interrupted_run_with_no_recorded_call_is_charged_its_first_call_at_the_estimate() -> None:
    payload = interrupted_payload(start_run())

    assert payload["estimated_usage"] == FIRST_CALL
    assert payload["usage"] == FIRST_CALL
    assert payload["subrequests"] == 1


def test_a_run_that_fails_otherwise_carries_no_estimate() -> None:
    run = start_run()
    run.fail("provider returned 529", USAGE, duration_ms=40, subrequests=1, retryable=True)

    assert event_payload(run.collect_events()[-1])["estimated_usage"] is None


def test_an_interrupted_run_is_rebuilt_from_its_events_with_its_started_call() -> None:
    run = start_run()
    call(run, 1)
    run.start_model_call(2, THIRD_CALL)
    rebuilt: Run | None = None
    for event in run.collect_events():
        rebuilt = event.mutate(rebuilt)
    assert isinstance(rebuilt, Run)

    assert rebuilt.started_call is not None
    assert (rebuilt.started_call.turn, rebuilt.in_flight()) == (2, THIRD_CALL)
    assert interrupted_payload(rebuilt)["estimated_usage"] == THIRD_CALL


# --- Gate ----------------------------------------------------------------------------------


def test_review_gate_id_is_deterministic_per_task() -> None:
    gate = Gate.open_review(WORKSPACE, TASK_ID)

    assert gate.id == review_gate_id(TASK_ID)
    assert Gate.open_review(WORKSPACE, TASK_ID).id == gate.id
    assert review_gate_id(OTHER_TASK_ID) != gate.id
    assert gate.kind == "task_review"
    assert gate.decision is None


def test_gate_decides_once() -> None:
    gate = Gate.open_review(WORKSPACE, TASK_ID)
    gate.decide("approve", "ship it")

    with pytest.raises(GateClosed):
        gate.decide("reject", "changed my mind")

    events = gate.collect_events()
    assert names(events) == ["gate.opened", "gate.decided"]
    assert event_payload(events[1]) == {"task_id": TASK_ID, "decision": "approve", "feedback": "ship it"}
    assert all(e.workspace_id == WORKSPACE for e in events)
    assert gate.decision == "approve"


# --- Ledger --------------------------------------------------------------------------------


def test_ledger_id_is_deterministic_per_task() -> None:
    assert Ledger.open(WORKSPACE, TASK_ID).id == ledger_id(TASK_ID)
    assert ledger_id(TASK_ID) == ledger_id(TASK_ID)
    assert ledger_id(TASK_ID) != ledger_id(OTHER_TASK_ID)


def test_ledger_charges_a_run_once() -> None:
    ledger = Ledger.open(WORKSPACE, TASK_ID)
    charge(ledger, "run-1", 0.02037)
    ledger.collect_events()

    charge(ledger, "run-1", 0.02037)

    assert ledger.collect_events() == []
    assert ledger.charged_runs == ["run-1"]
    assert ledger.total_usd == pytest.approx(0.02037)


def test_ledger_accumulates_total_usd_over_runs() -> None:
    ledger = Ledger.open(WORKSPACE, TASK_ID)
    charge(ledger, "run-1", 0.25, subtask_id="aaaa0001")
    charge(ledger, "run-2", 0.5, subtask_id="bbbb0002")
    charge(ledger, "run-3", 0.125, subtask_id="aaaa0001")

    events = ledger.collect_events()
    assert names(events) == ["ledger.opened", "ledger.charged", "ledger.charged", "ledger.charged"]
    assert ledger.total_usd == pytest.approx(0.875)
    assert ledger.charged_runs == ["run-1", "run-2", "run-3"]


def test_ledger_charged_event_payload() -> None:
    ledger = Ledger.open(WORKSPACE, TASK_ID)
    charge(ledger, "run-1", 0.02037)

    event = ledger.collect_events()[-1]

    assert event.workspace_id == WORKSPACE
    assert event_payload(event) == {
        "task_id": TASK_ID,
        "run_id": "run-1",
        "subtask_id": "aaaa0001",
        "model": "claude-sonnet-4-20250514",
        "input_tokens": 2340,
        "output_tokens": 890,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": 0.02037,
        "cpu_time_ms": 15,
        "subrequests": 1,
        "priced": True,
        "estimated": False,
    }


def test_ledger_charge_says_when_its_usage_includes_an_estimate() -> None:
    ledger = Ledger.open(WORKSPACE, TASK_ID)
    charge(ledger, "run-1", 0.02037)
    ledger.charge(
        run_id="run-2",
        subtask_id="aaaa0001",
        model="claude-sonnet-4-20250514",
        input_tokens=812,
        output_tokens=4096,
        cache_read_tokens=0,
        cache_write_tokens=0,
        cost_usd=0.063876,
        cpu_time_ms=0,
        subrequests=1,
        priced=True,
        estimated=True,
    )

    charged = [event_payload(e) for e in ledger.collect_events()[1:]]
    assert [c["estimated"] for c in charged] == [False, True]


# --- PullRequest ---------------------------------------------------------------------------


def test_pull_request_opened() -> None:
    pr = PullRequest.opened(WORKSPACE, TASK_ID, "https://github.com/acme/app/pull/7", 7)

    (event,) = pr.collect_events()
    assert EventTypes.name(type(event)) == "pull_request.opened"
    assert event.workspace_id == WORKSPACE
    assert event_payload(event) == {"task_id": TASK_ID, "url": "https://github.com/acme/app/pull/7", "number": 7}
    assert pr.url == "https://github.com/acme/app/pull/7"
    assert pr.number == 7
    assert pr.skipped_reason is None


def test_pull_request_skipped() -> None:
    pr = PullRequest.skipped(WORKSPACE, TASK_ID, "no GitHub credentials")

    (event,) = pr.collect_events()
    assert EventTypes.name(type(event)) == "pull_request.skipped"
    assert event.workspace_id == WORKSPACE
    assert event_payload(event) == {"task_id": TASK_ID, "reason": "no GitHub credentials"}
    assert pr.url is None
    assert pr.number is None
    assert pr.skipped_reason == "no GitHub credentials"


def test_pull_request_failed() -> None:
    error = "GitHub answered 401 to GET /repos/acme/app/pulls: Bad credentials"
    pr = PullRequest.failed(WORKSPACE, TASK_ID, error)

    (event,) = pr.collect_events()
    assert EventTypes.name(type(event)) == "pull_request.failed"
    assert event.workspace_id == WORKSPACE
    assert event_payload(event) == {"task_id": TASK_ID, "error": error}
    assert pr.error == error
    assert pr.url is None


def test_pull_request_id_is_deterministic_per_task() -> None:
    opened = PullRequest.opened(WORKSPACE, TASK_ID, "https://github.com/acme/app/pull/7", 7)
    skipped = PullRequest.skipped(WORKSPACE, TASK_ID, "no GitHub credentials")
    failed = PullRequest.failed(WORKSPACE, TASK_ID, "GitHub could not be reached")

    assert opened.id == skipped.id == failed.id == pull_request_id(TASK_ID)
    assert pull_request_id(OTHER_TASK_ID) != pull_request_id(TASK_ID)


def test_ids_differ_between_aggregate_kinds_of_the_same_task() -> None:
    ids = {review_gate_id(TASK_ID), ledger_id(TASK_ID), pull_request_id(TASK_ID), run_id_for(TASK_ID, "aaaa0001", 1)}

    assert len(ids) == 4
