"""A run's events become spec 004's SSE frames: in the log's order, each with its event's seq; a
step's Run is followed from its dispatch on; a resume's stream starts after the pause it answered;
the stream ends at the run's end or its next pause."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from contracts.events import EventEnvelope
from contracts.files import FileRef
from contracts.payloads.orchestration_run import (
    OrchestrationRunCompleted,
    OrchestrationRunPaused,
    OrchestrationRunResumed,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepStarted,
)
from contracts.payloads.run import RunModelCalled, RunSucceeded, RunToolCalled
from contracts.payloads.shapes import RunOutput
from libs.eventstore.blobs import digest_of
from services.gateway.runstream import Story, answers_in

RUN = uuid.uuid4()
STEP_RUN = uuid.uuid4()
RUN_ID = "run_orch-x_1"


def _envelope(seq: int, type_: str, aggregate: uuid.UUID, payload: msgspec.Struct) -> EventEnvelope:
    return EventEnvelope(seq, type_, "ws", str(aggregate), seq, 0, msgspec.to_builtins(payload))


def _story() -> list[EventEnvelope]:
    about = {"task_id": str(RUN), "subtask_id": "step-a@1", "agent_type": "orchestration"}
    called = RunModelCalled(
        **about, provider="anthropic", model="m", turn=1, status="ok", duration_ms=5,
        usage={"input_tokens": 10}, stop_reason="tool_use", tool_calls=1, error=None,
    )  # fmt: skip
    tool = RunToolCalled(
        **about, call_id="c1", tool="read_file", status="ok", title="Read a.py", target="a.py", duration_ms=1,
        error=None,
    )  # fmt: skip
    dispatched = OrchestrationRunStepDispatched(
        subtask_id="step-a@1", agent_type="orchestration", description="d", files={}, config={}, attempt=1,
        run_id=str(STEP_RUN),
    )  # fmt: skip
    succeeded = RunSucceeded(
        **about, provider="anthropic", model="m", output=RunOutput(files={}, summary="ok"), usage={}
    )
    fields: list[dict[str, Any]] = [{"name": "ok", "type": "bool", "label": "OK?"}]
    return [
        _envelope(1, "orchestration_run.step_started", RUN, OrchestrationRunStepStarted(
            step_id="step-a", step_name="A", type="agent")),
        _envelope(2, "orchestration_run.step_dispatched", RUN, dispatched),
        _envelope(3, "run.model_called", STEP_RUN, called),
        _envelope(4, "run.tool_called", STEP_RUN, tool),
        _envelope(5, "run.succeeded", STEP_RUN, succeeded),
        _envelope(6, "orchestration_run.step_completed", RUN, OrchestrationRunStepCompleted(
            step_id="step-a", output="out", value="ok", turns=1, cost_usd=0.01)),
        _envelope(7, "orchestration_run.step_started", RUN, OrchestrationRunStepStarted(
            step_id="step-h", step_name="H", type="human")),
        _envelope(8, "orchestration_run.paused", RUN, OrchestrationRunPaused(
            step_id="step-h", prompt="OK?", fields=fields, gate="step-h@1")),
        _envelope(9, "orchestration_run.resumed", RUN, OrchestrationRunResumed(
            step_id="step-h", gate="step-h@1", values={"ok": True})),
        _envelope(10, "orchestration_run.completed", RUN, OrchestrationRunCompleted(response="X complete.")),
    ]  # fmt: skip


def _read(story: Story, log: list[EventEnvelope]) -> list[tuple[int, str]]:
    """Reads as the stream does: only the followed aggregates' events after where it stands."""
    frames: list[tuple[int, str]] = []
    while story.ended is None:
        page = [e for e in log if e.seq > story.last and uuid.UUID(e.aggregate_id) in story.followed]
        got, again = story.read(page, None)
        frames += [(f.seq, f.type) for f in got]
        if not again and story.ended is None:
            break
    return frames


def test_a_run_is_framed_in_the_logs_order_with_its_events_seqs_up_to_its_pause() -> None:
    story = Story(RUN, RUN_ID, None)

    frames = _read(story, _story())

    assert frames == [
        (1, "step_start"),
        (3, "agent_turn"),
        (4, "tool_execution"),
        (4, "tool_result"),
        (6, "step_complete"),
        (7, "step_start"),
        (8, "human_input_required"),
    ]
    assert story.ended == "paused" and story.followed == [RUN], "the ended Run is followed no more"


def test_a_resumes_stream_starts_after_the_pause_it_answered_and_ends_at_the_runs_end() -> None:
    story = Story(RUN, RUN_ID, past_gate="step-h@1")

    frames = _read(story, _story())

    assert frames == [(9, "step_complete"), (10, "orchestration_complete")]
    assert story.ended == "completed"


def test_frames_say_which_step_and_run_they_are_about() -> None:
    story = Story(RUN, RUN_ID, None)
    log = _story()
    story.read(log[:2], None)
    frames, _ = story.read(log[2:4], None)

    turn, execution, result = (f.data for f in frames)
    assert turn["run_id"] == RUN_ID and turn["step_id"] == "step-a" and turn["step_name"] == "A"
    assert turn["turn"] == 1 and turn["tool_calls"] == 1
    assert execution == {"run_id": RUN_ID, "step_id": "step-a", "tool_name": "read_file", "args": {"target": "a.py"}}
    assert result == {
        "run_id": RUN_ID, "step_id": "step-a", "tool_name": "read_file", "status": "ok", "preview": "Read a.py",
        "error": None,
    }  # fmt: skip


def test_a_long_answer_by_digest_is_sent_whole_and_an_old_inline_one_as_it_is() -> None:
    answer = "# Report\n" + "Owls hoot. " * 1000
    ref = FileRef(digest=digest_of(answer), size=len(answer))
    log = [
        _envelope(1, "orchestration_run.step_started", RUN, OrchestrationRunStepStarted(
            step_id="step-a", step_name="A", type="agent")),
        _envelope(2, "orchestration_run.step_completed", RUN, OrchestrationRunStepCompleted(
            step_id="step-a", output="report", value_ref=ref, turns=1, cost_usd=0.01)),
        _envelope(3, "orchestration_run.step_completed", RUN, OrchestrationRunStepCompleted(
            step_id="step-a", output="old", value="x" * 10_000)),
    ]  # fmt: skip
    assert answers_in(log) == {"ws": {ref.digest}}, "the digests to load, by workspace"
    story = Story(RUN, RUN_ID, None)

    frames, _ = story.read(log, None, {ref.digest: answer})

    long, old = (f.data for f in frames if f.type == "step_complete")
    assert long == {
        "run_id": RUN_ID, "step_id": "step-a", "step_name": "A", "type": "agent", "status": "completed",
        "output_key": "report", "output": answer, "next_step": None, "turns": 1, "cost_usd": 0.01,
    }  # fmt: skip
    assert old["output"] == "x" * 10_000
