"""The OrchestrationRun's state machine: its shared state and step history come from its events."""

from __future__ import annotations

import msgspec
import pytest

from contracts.files import FileRef
from contracts.payloads.orchestration_run import (
    OrchestrationRunPaused,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepRetried,
)
from libs.domain.errors import IllegalTransition
from libs.domain.orchestration_run import (
    COMPLETED,
    FAILED,
    PAUSED,
    RUNNING,
    OrchestrationRun,
    StepEntry,
    orchestration_run_id,
)

DIGEST = "sha256:" + "cd" * 32


def _run() -> OrchestrationRun:
    ref = FileRef(digest=DIGEST, size=100)
    return OrchestrationRun.start("ws", "run_orch-a_1", "orch-a", DIGEST, ref, "quantum", "query", None)


def _dispatch(step_id: str, attempt: int = 1) -> OrchestrationRunStepDispatched:
    return OrchestrationRunStepDispatched(
        subtask_id=f"{step_id}@1", agent_type="orchestration", description="d", files={}, config={}, attempt=attempt
    )


def test_a_run_starts_with_the_message_under_the_first_key_and_is_found_by_its_run_id() -> None:
    run = _run()
    assert run.id == orchestration_run_id("run_orch-a_1")
    assert (run.status, run.shared_state, run.step_history) == (RUNNING, {"query": "quantum"}, [])


def test_an_agent_step_writes_its_output_and_shows_its_turns_and_cost() -> None:
    run = _run()
    assert run.start_step("step-research", "Research", "agent") == 1
    run.dispatch_step(_dispatch("step-research"))
    assert run.dispatched is not None and run.step_history[-1].status == RUNNING
    done = OrchestrationRunStepCompleted(
        step_id="step-research", output="results", value="found", turns=3, cost_usd=0.01
    )
    run.complete_step(done)
    run.complete("orch-a complete")

    assert run.status == COMPLETED and run.response == "orch-a complete"
    assert run.shared_state == {"query": "quantum", "results": "found"}
    assert run.step_history == [
        StepEntry(step_id="step-research", step_name="Research", type="agent", status=COMPLETED, turns=3, cost_usd=0.01)
    ]
    assert run.dispatched is None and run.cost_usd == 0.01


def test_a_step_entered_again_counts_its_visits() -> None:
    run = _run()
    run.start_step("step-loop", "Loop", "condition")
    run.complete_step(OrchestrationRunStepCompleted(step_id="step-loop", next_step="step-loop"))
    assert run.start_step("step-loop", "Loop", "condition") == 2


def test_a_result_for_another_step_or_a_finished_run_is_refused() -> None:
    run = _run()
    run.start_step("step-a", "A", "agent")
    with pytest.raises(IllegalTransition):
        run.complete_step(OrchestrationRunStepCompleted(step_id="step-b"))
    run.fail("boom", turns=2, cost_usd=0.5)
    assert run.status == FAILED and run.response == "boom"
    assert run.step_history[-1].status == FAILED and run.step_history[-1].cost_usd == 0.5
    with pytest.raises(IllegalTransition):
        run.complete_step(OrchestrationRunStepCompleted(step_id="step-a"))
    with pytest.raises(IllegalTransition):
        run.fail("again")


def test_a_human_step_pauses_the_run() -> None:
    run = _run()
    run.start_step("step-approve", "Approve", "human")
    run.pause(OrchestrationRunPaused(step_id="step-approve", prompt="OK?", fields=[{"name": "ok", "type": "bool"}]))
    assert run.status == PAUSED and run.step_history[-1].status == PAUSED
    with pytest.raises(IllegalTransition):
        run.start_step("step-next", "Next", "agent")


def test_a_steps_entry_adds_up_what_each_of_its_attempts_spent() -> None:
    run = _run()
    run.start_step("step-research", "Research", "agent")
    run.dispatch_step(_dispatch("step-research"))
    lost = OrchestrationRunStepRetried(
        step_id="step-research", step_run_id="r-1", attempt=1, reason="lease expired", turns=1, cost_usd=0.02
    )
    run.retry_step(lost, _dispatch("step-research", attempt=2))

    assert run.step_history[-1].status == RUNNING and run.step_spent == (1, 0.02)
    assert run.dispatched is not None and run.dispatched.attempt == 2
    with pytest.raises(IllegalTransition):
        run.retry_step(msgspec.structs.replace(lost, step_id="step-other"), _dispatch("step-other"))
    # The Run that did the step reports the whole step's spend (the planner adds the attempts).
    run.complete_step(
        OrchestrationRunStepCompleted(step_id="step-research", output="r", value="v", turns=3, cost_usd=0.05)
    )
    assert (run.step_history[-1].turns, run.step_history[-1].cost_usd) == (3, 0.05)
    assert run.step_spent == (0, 0.0), "no step under way"
