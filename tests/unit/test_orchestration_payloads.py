"""Every payload the planner's orchestration code emits (`services.planner.orchestrating`, through
`libs.domain.orchestration_run`), driven as the planner drives a run, goes through the store's
JSON and comes back equal, as its Struct, from `contracts.events.typed` and from the mapper: a
field of a wrong type anywhere in that code fails here (and at the emit itself:
`libs.domain.payload_check`)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.events import EventEnvelope, typed
from contracts.payloads import PAYLOADS
from contracts.payloads.shapes import Files, RunOutput
from libs.domain.base import ENVELOPE_FIELDS, EventTypes
from libs.domain.orchestration_run import OrchestrationRun
from libs.eventstore.blobs import stored
from libs.eventstore.mapper import PayloadMapper
from libs.eventstore.transcoder import MsgspecTranscoder
from libs.orchestrations import stored as stored_definitions
from services.planner import orchestrating
from tests.unit.orchestration_fakes import FakeStore, answered, claimed, end_of, started, succeeded

DEFINITION = """
id: orch-payloads
name: Payloads flow
max_cost_usd: 5
state_schema:
  request: {}
  repo: {type: files}
  report: {}
  verdict: {}
  notes: {type: string}
steps:
  - {id: step-write, type: agent, name: Write, prompt: "Do {{ request }}", output: report, max_turns: 3,
     tools: [read_file, write_file, delete_file], files: repo}
  - {id: step-skip, type: condition, name: Skip, key: report, equals: skip, goto: step-end}
  - id: step-ok
    type: human
    name: OK?
    prompt: Keep it?
    fields:
      - {name: verdict, type: select, label: Verdict, options: [keep, drop]}
      - {name: notes, type: text, label: Notes, required: false}
    agent_context: "Report: {{ report }}"
  - {id: step-end, type: agent, name: End, prompt: "Close {{ report }} ({{ notes }})", output: report}
"""
CALL = {"input_tokens": 1000, "output_tokens": 200}
REPORT = "# Report\n\n" + "A finding, with its source. " * 300  # over the inline limit: a blob


@pytest.fixture(autouse=True)
def _fresh_definitions() -> None:
    stored_definitions.definition_of.cache_clear()


def _output(written: dict[str, str], summary: str) -> RunOutput:
    refs, _ = stored("ws", written)
    return RunOutput(files=msgspec.convert(refs, Files), summary=summary, deleted_files=["old.txt"])


def _a_whole_run(store: FakeStore) -> OrchestrationRun:
    """One run through every way the planner moves a run on, to its end."""
    run = started(store, DEFINITION, message="add a greeting", files={"a.py": "A = 1\n", "old.txt": "x\n"})
    first = claimed(run, store)
    first.record_model_call(1, True, 100, CALL, "tool_use", 1, None)
    first.fail("checks failed", CALL, 100, 1, retryable=True, output=_output({"a.py": "def (:\n"}, "broken"))
    orchestrating.on_run_end(run, end_of(first), store)  # type: ignore[arg-type]  # retried, from its changes
    given_back = claimed(run, store)
    given_back.release("busy", {"input_tokens": 10, "output_tokens": 1}, 5)
    orchestrating.on_run_end(run, end_of(given_back), store)  # type: ignore[arg-type]  # the same attempt anew
    lapsed = claimed(run, store)
    lapsed.expire(lease_until=1)
    orchestrating.on_run_end(run, end_of(lapsed), store)  # type: ignore[arg-type]  # the next names it
    done = claimed(run, store)
    done.record_model_call(1, True, 100, CALL, "end_turn", 1, None)
    done.succeed(_output({"a.py": "A = 2\n"}, REPORT), CALL, 200, 2)
    orchestrating.on_run_end(run, end_of(done), store)  # type: ignore[arg-type]  # a condition, then a pause
    store.save([run])
    answer = answered(run, "step-ok", "step-ok@1", {"verdict": "keep", "notes": "fine"})
    orchestrating.on_answer(run, answer, store)  # type: ignore[arg-type]
    orchestrating.on_run_end(run, succeeded(run, RunOutput(files={}, summary="closed")), store)  # type: ignore[arg-type]
    return run


def _failed_runs(store: FakeStore) -> list[OrchestrationRun]:
    """A run whose step failed for good, and one whose first step would cross its limit."""
    failing = started(store, DEFINITION, message="x")
    step_run = claimed(failing, store)
    step_run.fail("the model refused", CALL, 10, 1)
    orchestrating.on_run_end(failing, end_of(step_run), store)  # type: ignore[arg-type]
    over = started(store, DEFINITION, message="y", max_cost_usd=0.01)
    return [failing, over]


def _through_the_store(run: OrchestrationRun, mapper: PayloadMapper) -> list[tuple[Any, EventEnvelope, Any]]:
    """Each event the run emitted, as the store keeps it: (the payload emitted, its envelope as
    the log reads it, the payload the mapper loads back)."""
    found = []
    for seq, event in enumerate(run.collect_events(), start=1):
        kept = mapper.to_stored_event(event)
        state = msgspec.json.decode(kept.state)
        payload = {k: v for k, v in state.items() if k not in ENVELOPE_FIELDS}
        envelope = EventEnvelope(seq, EventTypes.name(type(event)), "ws", str(run.id), seq, 0, payload)
        found.append((event.payload, envelope, mapper.to_domain_event(kept).payload))
    return found


def test_every_payload_the_planners_orchestration_code_emits_reads_back_equal() -> None:
    store, mapper = FakeStore(), PayloadMapper(transcoder=MsgspecTranscoder())
    runs = [_a_whole_run(store), *_failed_runs(store)]

    kept = [k for run in runs for k in _through_the_store(run, mapper)]

    for emitted, envelope, loaded in kept:
        read = typed(envelope).payload
        assert type(read) is PAYLOADS[envelope.type], envelope.type
        assert read == emitted, envelope.type
        assert loaded == emitted, envelope.type
    types = {envelope.type for _, envelope, _ in kept}
    assert types == {t for t in PAYLOADS if t.startswith("orchestration_run.")}, "every type the run has"
    completed = [e for e, envelope, _ in kept if envelope.type == "orchestration_run.step_completed"]
    assert {(c.step_id, c.value_ref is not None, c.changes is not None) for c in completed} == {
        ("step-write", True, True),  # a long answer by digest, and the files it changed
        ("step-skip", False, False),
        ("step-end", False, False),
    }
