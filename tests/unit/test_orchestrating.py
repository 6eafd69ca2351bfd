"""The planner runs a definition step by step: agent steps dispatched as Runs, conditions decided
at once, a human step pauses, the end completes; a Run's end moves its step on (fakes, no store)."""

from __future__ import annotations

import msgspec
import pytest

from contracts.events import Event
from contracts.files import FileRef
from contracts.payloads.orchestration_run import (
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepRetried,
)
from contracts.payloads.run import RunFailed, RunSucceeded
from contracts.payloads.shapes import RunOutput
from libs.domain.orchestration_run import COMPLETED, FAILED, PAUSED, RUNNING, OrchestrationRun
from libs.eventstore.blobs import digest_of
from libs.orchestrations import stored
from libs.orchestrations.definitions import parse
from libs.orchestrations.values import VALUE_INLINE_BYTES
from services.planner import orchestrating
from tests.unit.orchestration_fakes import FakeStore, answered, claimed, end_of, ended, start, started, succeeded

DEFINITION = """
id: orch-test
name: Test flow
state_schema:
  topic: {}
  notes: {}
  verdict: {}
steps:
  - {id: step-write, type: agent, name: Write, prompt: "Write about {{ topic }}", output: notes, max_turns: 2}
  - {id: step-skip, type: condition, name: Skip, key: notes, equals: skip, goto: step-end}
  - id: step-ok
    type: human
    name: OK?
    prompt: Publish?
    fields: [{name: verdict, type: select, label: Verdict, options: [publish, hold]}]
    agent_context: "Notes: {{ notes }}"
  - {id: step-end, type: agent, name: End, prompt: "Close {{ notes }}", output: notes}
"""


def _started(store: FakeStore, max_cost_usd: float | None = None) -> OrchestrationRun:
    return started(store, DEFINITION, max_cost_usd=max_cost_usd)


def _succeeded(run: OrchestrationRun, summary: str, input_tokens: int = 1000) -> Event[RunSucceeded]:
    return succeeded(run, RunOutput(files={}, summary=summary), {"input_tokens": input_tokens, "output_tokens": 200})


@pytest.fixture(autouse=True)
def _fresh_definitions() -> None:
    stored.definition_of.cache_clear()


def test_a_start_stores_the_definition_by_its_digest_and_dispatches_the_first_agent_step() -> None:
    store = FakeStore()
    reply = start(store, DEFINITION)
    run = store.aggregates[-1]

    assert reply.seq == 42 and reply.run_id is not None and reply.run_id.startswith("run_orch-test_")
    assert run.run_id == reply.run_id and run.status == RUNNING
    assert (
        store.blobs.saved[run.digest]
        == msgspec.json.encode(parse(DEFINITION, "t").orchestration, order="sorted").decode()
    )
    dispatched = run.dispatched
    assert isinstance(dispatched, OrchestrationRunStepDispatched)
    assert dispatched.description == "Write about owls" and dispatched.subtask_id == "step-write@1"
    assert dispatched.config["maxTurns"] == 2 and dispatched.attempt == 1


def test_an_agent_steps_answer_goes_to_its_key_and_the_run_pauses_at_the_human_step() -> None:
    store = FakeStore()
    run = _started(store)
    orchestrating.on_run_end(run, _succeeded(run, "owls hoot"), store)  # type: ignore[arg-type]

    assert run.status == PAUSED and run.shared_state == {"topic": "owls", "notes": "owls hoot"}
    assert [(s.step_id, s.status) for s in run.step_history] == [
        ("step-write", "completed"),
        ("step-skip", "completed"),
        ("step-ok", "paused"),
    ]
    assert run.step_history[0].cost_usd > 0
    assert run.paused is not None and run.paused.agent_context == "Notes: owls hoot"
    assert run.paused.fields == [
        {"name": "verdict", "type": "select", "label": "Verdict", "required": True, "options": "publish,hold"}
    ]


def test_a_condition_taken_jumps_and_the_last_step_completes_the_run() -> None:
    store = FakeStore()
    run = _started(store)
    orchestrating.on_run_end(run, _succeeded(run, "skip"), store)  # type: ignore[arg-type]
    assert run.dispatched is not None and run.dispatched.description == "Close skip"
    orchestrating.on_run_end(run, _succeeded(run, "closed"), store)  # type: ignore[arg-type]

    assert run.status == COMPLETED and run.response == "Test flow complete."
    assert [s.step_id for s in run.step_history] == ["step-write", "step-skip", "step-end"]
    assert run.shared_state["notes"] == "closed"


def test_a_retryable_failure_dispatches_the_step_again_and_a_final_one_fails_the_run() -> None:
    store = FakeStore()
    run = _started(store)
    first = run.dispatched
    assert first is not None

    def failed(retryable: bool) -> Event[RunFailed]:
        d = run.dispatched
        assert d is not None
        p = RunFailed(
            task_id=str(run.id),
            subtask_id=d.subtask_id,
            provider="anthropic",
            model="m",
            error="boom",
            usage={},
            attempt=d.attempt,
            retryable=retryable,
        )
        return ended(run, p)

    orchestrating.on_run_end(run, failed(True), store)  # type: ignore[arg-type]
    second = run.dispatched
    assert second is not None and second.attempt == 2 and second.run_id != first.run_id
    assert second.previous_error == "boom"
    # The first attempt's end again (a redelivery) is stale: nothing changes.
    stale = Event(
        seq=8,
        type="run.failed",
        workspace_id="ws",
        aggregate_id=first.run_id,
        version=3,
        occurred_at=0,
        payload=failed(True).payload,
    )
    orchestrating.on_run_end(run, stale, store)  # type: ignore[arg-type]
    assert run.dispatched == second

    orchestrating.on_run_end(run, failed(False), store)  # type: ignore[arg-type]
    assert run.status == FAILED and run.response == "step step-write failed: boom"


def test_an_answer_at_the_gate_writes_its_fields_to_the_state_and_the_run_goes_on() -> None:
    store = FakeStore()
    run = _started(store)
    orchestrating.on_run_end(run, _succeeded(run, "owls hoot"), store)  # type: ignore[arg-type]
    assert run.paused is not None and run.paused.gate == "step-ok@1"

    orchestrating.on_answer(run, answered(run, "step-ok", "step-ok@1", {"verdict": "publish"}), store)  # type: ignore[arg-type]

    assert run.status == RUNNING and run.shared_state["verdict"] == "publish"
    assert [(s.step_id, s.status) for s in run.step_history][-2:] == [("step-ok", "completed"), ("step-end", "running")]
    assert run.dispatched is not None and run.dispatched.description == "Close owls hoot"


def test_an_answer_to_a_pause_the_run_is_not_at_changes_nothing() -> None:
    store = FakeStore()
    run = _started(store)
    orchestrating.on_run_end(run, _succeeded(run, "owls hoot"), store)  # type: ignore[arg-type]
    before = len(run.pending_events)

    orchestrating.on_answer(run, answered(run, "step-ok", "step-ok@2", {"verdict": "publish"}), store)  # type: ignore[arg-type]

    assert run.status == PAUSED and len(run.pending_events) == before and "verdict" not in run.shared_state


def test_a_run_whose_first_step_would_cross_its_cost_limit_fails_before_starting_it() -> None:
    store = FakeStore()
    run = _started(store, max_cost_usd=0.01)

    # Its first model call alone is estimated at about $0.06 (4,096 tokens out at $15 a million).
    assert run.status == FAILED and run.response == "Cost limit exceeded: $0.07 > max $0.01"
    assert run.step_history == [] and run.dispatched is None


def test_a_step_that_would_cross_the_limit_is_not_started_after_what_the_run_spent() -> None:
    store = FakeStore()
    run = _started(store, max_cost_usd=0.5)
    assert run.dispatched is not None  # $0.06 of $0.50
    # The step spent $0.45 (150,000 tokens in at $3 a million, 200 out): with the next step's
    # estimate the run would pass $0.50.
    orchestrating.on_run_end(run, _succeeded(run, "skip", input_tokens=150_000), store)  # type: ignore[arg-type]

    assert run.status == FAILED and run.response == "Cost limit exceeded: $0.52 > max $0.50"
    assert [(s.step_id, s.status) for s in run.step_history] == [
        ("step-write", "completed"),
        ("step-skip", "completed"),
    ]
    assert run.step_history[0].cost_usd == pytest.approx(0.453)


def test_templates_read_missing_keys_as_empty_and_other_values_as_json() -> None:
    assert orchestrating.render("a {{ x }} b {{y}} c", {"y": 3}) == "a  b 3 c"


CALL = {"input_tokens": 1000, "output_tokens": 200}  # $0.006


def test_a_step_whose_lease_expired_and_was_retried_shows_the_turns_and_cost_of_both_attempts() -> None:
    store = FakeStore()
    run = _started(store)
    first = claimed(run, store)
    first.record_model_call(1, True, 100, CALL, "tool_use", 1, None)
    first.start_model_call(2, {"input_tokens": 3000, "output_tokens": 500})  # in flight when the holder died
    first.expire(lease_until=1)
    orchestrating.on_run_end(run, end_of(first), store)  # type: ignore[arg-type]

    again = run.dispatched
    assert again is not None and again.attempt == 2 and again.previous_run_id == str(first.id)
    # Charged as the ledger charges the expired Run: its call, and the one in flight at its estimate.
    expired_usd = (4000 * 3 + 700 * 15) / 1e6
    assert (run.step_history[0].status, run.step_history[0].turns) == (RUNNING, 1)
    assert run.step_history[0].cost_usd == pytest.approx(expired_usd)
    second = claimed(run, store)
    for turn in (1, 2):
        second.record_model_call(turn, True, 100, CALL, "tool_use", 1, None)
    second.succeed(RunOutput(files={}, summary="owls hoot"), {"input_tokens": 2000, "output_tokens": 400}, 200, 2)
    orchestrating.on_run_end(run, end_of(second), store)  # type: ignore[arg-type]

    write = run.step_history[0]
    assert (write.step_id, write.status, write.turns) == ("step-write", COMPLETED, 3)
    assert write.cost_usd == pytest.approx(expired_usd + 0.012)
    assert run.status == PAUSED and run.shared_state["notes"] == "owls hoot"
    # The history says what the lost attempt spent, and why the step went again.
    retried = [e.payload for e in run.collect_events() if isinstance(e.payload, OrchestrationRunStepRetried)]
    assert [(r.step_run_id, r.attempt, r.turns) for r in retried] == [(str(first.id), 1, 1)]
    assert retried[0].reason == first.error


def test_a_step_that_fails_for_good_after_a_retry_fails_with_what_all_its_attempts_spent() -> None:
    store = FakeStore()
    run = _started(store)
    for attempt in (1, 2):
        step_run = claimed(run, store)
        step_run.record_model_call(1, True, 100, CALL, "tool_use", 1, None)
        step_run.fail("checks failed", CALL, 100, 1, retryable=attempt == 1)
        orchestrating.on_run_end(run, end_of(step_run), store)  # type: ignore[arg-type]

    assert run.status == FAILED and run.response == "step step-write failed: checks failed"
    write = run.step_history[0]
    assert (write.status, write.turns) == (FAILED, 2)
    assert write.cost_usd == pytest.approx(2 * 0.006)


# --- a long answer: a blob by digest ---------------------------------------------------------------


def _completed(run: OrchestrationRun, step_id: str) -> list[OrchestrationRunStepCompleted]:
    completed = [e.payload for e in run.collect_events() if isinstance(e.payload, OrchestrationRunStepCompleted)]
    return [p for p in completed if p.step_id == step_id]


def test_a_long_answer_is_a_blob_named_by_digest_and_the_next_steps_read_its_text() -> None:
    store = FakeStore()
    run = _started(store)
    notes = "Owls hoot at night. " * 300  # 6,000 bytes: over VALUE_INLINE_BYTES
    orchestrating.on_run_end(run, _succeeded(run, notes), store)  # type: ignore[arg-type]
    store.save([run])  # as the planner's consumer saves what its handler changed

    [completed] = _completed(run, "step-write")
    assert (completed.output, completed.value) == ("notes", None)
    assert completed.value_ref == FileRef(digest=digest_of(notes), size=len(notes))
    assert len(msgspec.json.encode(completed)) < 300, "the event names the answer, it does not hold it"
    # Stored with the run's save, in the same transaction as the event that names it.
    assert store.blobs.saved[digest_of(notes)] == notes
    # The state holds it by digest, as a files key holds a file; the templates read its text.
    assert run.shared_state["notes"] == {"digest": digest_of(notes), "size": len(notes)}
    assert run.status == PAUSED and run.paused is not None and run.paused.agent_context == f"Notes: {notes}"

    orchestrating.on_answer(run, answered(run, "step-ok", "step-ok@1", {"verdict": "publish"}), store)  # type: ignore[arg-type]

    assert run.dispatched is not None and run.dispatched.description == f"Close {notes}"


def test_an_answer_at_the_limit_stays_in_its_event_and_one_byte_more_is_a_blob() -> None:
    for notes, inline in (("é" * (VALUE_INLINE_BYTES // 2), True), ("é" * (VALUE_INLINE_BYTES // 2) + ".", False)):
        store = FakeStore()
        run = _started(store)
        orchestrating.on_run_end(run, _succeeded(run, notes), store)  # type: ignore[arg-type]
        store.save([run])
        [done] = _completed(run, "step-write")
        assert (done.value == notes, done.value_ref is None, digest_of(notes) in store.blobs.saved) == (
            inline,
            inline,
            not inline,
        )


def test_a_long_answer_decides_a_condition_by_its_text() -> None:
    store = FakeStore()
    skip = DEFINITION.replace("equals: skip", "equals: " + "s" * 5000)
    run = started(store, skip)
    orchestrating.on_run_end(run, _succeeded(run, "s" * 5000), store)  # type: ignore[arg-type]

    assert [s.step_id for s in run.step_history] == ["step-write", "step-skip", "step-end"]
    assert run.dispatched is not None and run.dispatched.description == "Close " + "s" * 5000


def test_an_answer_stored_inline_before_long_answers_were_blobs_still_reads() -> None:
    store = FakeStore()
    run = _started(store)
    notes = "x" * 10_000
    old = OrchestrationRunStepCompleted(step_id="step-write", output="notes", value=notes, turns=1)
    run.complete_step(old)

    assert run.shared_state["notes"] == notes
    assert orchestrating.state_of(run, store)["notes"] == notes and store.blobs.loads == 0
