"""The agent the executor sets up for an orchestration's agent step: only the tools the step names
(and finish), its files when it has a repository tool, none otherwise."""

from __future__ import annotations

import msgspec

from contracts.payloads.orchestration_run import OrchestrationRunStepDispatched
from contracts.payloads.shapes import Files
from contracts.payloads.task import TaskSubtaskDispatched
from libs.agent.prompts import END_FILES
from libs.config import Settings
from libs.eventstore.blobs import stored
from services.executor.runs import agent_spec

SETTINGS = Settings(service="executor", database_url="postgresql://unused")
FILES = {"src/app.py": "def main():\n    return 1\n"}
REFS, BLOBS = stored("ws", FILES)
LOADED = {b.digest: b.content.decode() for b in BLOBS}


def _step(tools: list[str] | None) -> OrchestrationRunStepDispatched:
    return OrchestrationRunStepDispatched(
        subtask_id="step-plan@1",
        agent_type="orchestration",
        description="Plan the change",
        files=msgspec.convert(REFS, Files),
        config={"model": "m", "provider": "anthropic", "maxTurns": 3},
        attempt=1,
        tools=tools,
    )


def test_a_reading_step_is_told_of_its_tools_only_and_shown_its_files() -> None:
    spec, repo = agent_spec(_step(["list_files", "read_file", "search"]), SETTINGS, LOADED)

    assert spec.tools == ("list_files", "read_file", "search")
    assert "(you cannot change files)" in spec.system and "write_file" not in spec.system
    assert "--- FILE: src/app.py ---\ndef main():\n    return 1\n" in spec.first_message
    assert repo.current() == FILES and spec.max_turns == 3


def test_a_step_without_tools_is_shown_no_files() -> None:
    spec, _ = agent_spec(_step([]), SETTINGS, LOADED)

    assert spec.tools == ()
    assert spec.first_message == "Task: Plan the change"
    assert "no tool but finish" in spec.system and "read_file" not in spec.system


def test_a_step_dispatched_before_steps_named_tools_gets_the_whole_set() -> None:
    spec, _ = agent_spec(_step(None), SETTINGS, LOADED)

    assert spec.tools is None
    assert "write_file" in spec.system and spec.first_message.endswith(END_FILES)


def test_a_subtask_dispatch_is_set_up_as_before() -> None:
    subtask = TaskSubtaskDispatched(
        subtask_id="implement",
        agent_type="codegen",
        description="Add a docstring",
        files=msgspec.convert(REFS, Files),
        config={},
        attempt=1,
    )

    spec, _ = agent_spec(subtask, SETTINGS, LOADED)

    assert spec.tools is None and "delete_file" in spec.system and "src/app.py" in spec.first_message
