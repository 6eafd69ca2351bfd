"""An event's payload is checked against its Struct when the event is made (`emit`, `_create`):
one that a reader would decode otherwise, or refuse, is never emitted."""

from __future__ import annotations

import uuid

import msgspec
import pytest

from contracts.files import FileRef
from contracts.payloads.orchestration_run import OrchestrationRunStepDispatched, OrchestrationRunStepStarted
from contracts.payloads.shapes import RunOutput
from contracts.payloads.task import TaskSubtaskDispatched
from libs.domain.orchestration_run import OrchestrationRun
from libs.domain.payload_check import PayloadTypeError, check_payload
from libs.domain.run import Run

DIGEST = "sha256:" + "ab" * 32


def _run() -> OrchestrationRun:
    definition = FileRef(digest=DIGEST, size=10)
    run = OrchestrationRun.start("ws", "run_orch-a_1", "orch-a", DIGEST, definition, "owls", "topic", None)
    run.start_step("step-write", "Write", "agent")
    return run


def _dispatch(**changes: object) -> OrchestrationRunStepDispatched:
    dispatch = OrchestrationRunStepDispatched(
        subtask_id="step-write@1",
        agent_type="orchestration",
        description="Write about owls",
        files={"a.py": FileRef(digest=DIGEST, size=3)},
        config={"model": "m", "provider": "anthropic", "maxTokens": 4096},
        attempt=1,
        run_id=str(uuid.uuid4()),
        tools=["read_file"],
    )
    return msgspec.structs.replace(dispatch, **changes)


def test_a_well_typed_payload_is_emitted() -> None:
    run, dispatch = _run(), _dispatch()
    run.dispatch_step(dispatch)
    assert run.dispatched is dispatch and len(run.pending_events) == 3


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"handover": "1"}, "handover"),  # the positional slip `_dispatch` once made
        ({"attempt": True}, "attempt"),  # a bool is no int on the wire's reading
        ({"run_id": uuid.uuid4()}, "run_id"),  # a UUID would come back a string
        ({"files": {"a.py": {"digest": DIGEST, "size": 3}}}, "files"),  # a dict where a FileRef is
        ({"previous_output": RunOutput(files={}, summary=1)}, "summary"),  # wrong deep inside
        ({"tools": ("read_file",)}, "tools"),  # a tuple would come back a list
        ({"config": {"maxTokens": object()}}, "object"),  # not JSON at all
    ],
)
def test_a_payload_a_reader_would_decode_otherwise_is_refused_when_emitted(
    changes: dict[str, object], named: str
) -> None:
    run = _run()
    with pytest.raises(TypeError, match=named):
        run.dispatch_step(_dispatch(**changes))
    assert run.dispatched is None and len(run.pending_events) == 2, "nothing was applied or appended"


def test_another_events_struct_is_refused() -> None:
    run = _run()
    # A subtask's dispatch is an orchestration step's dispatch's base, but not its event's Struct.
    plain = TaskSubtaskDispatched(subtask_id="s", agent_type="a", description="d", files={}, config={}, attempt=1)
    with pytest.raises(TypeError, match="TaskSubtaskDispatched"):
        run.dispatch_step(plain)  # type: ignore[arg-type]


def test_a_creation_event_is_checked_too() -> None:
    with pytest.raises(TypeError, match="attempt"):
        Run.start("ws", str(uuid.uuid4()), "s", "codegen", "1", "anthropic", "m")  # type: ignore[arg-type]


def test_the_check_names_the_event_class_and_the_field() -> None:
    started = OrchestrationRunStepStarted(step_id="s", step_name="S", type="agent", visit="2")  # type: ignore[arg-type]
    with pytest.raises(PayloadTypeError, match=r"StepStarted: OrchestrationRunStepStarted .*\$\.visit"):
        check_payload(OrchestrationRun.StepStarted, OrchestrationRunStepStarted, started)
