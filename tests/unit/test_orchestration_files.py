"""An orchestration's files key, by digest: an agent step's dispatch carries the files and the tools
it names, and what a step with the writing tools changed goes to the key for the next step
(fakes, no store; `tests/integration/test_orchestration_state_files.py` projects the same events)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from contracts.commands import CommandReply
from contracts.files import FileRef
from contracts.orchestrations import RunOrchestration
from contracts.payloads.run import RunFailed, RunReleased
from contracts.payloads.shapes import Changes, Files, RunOutput
from libs.domain.orchestration_run import PAUSED, OrchestrationRun, with_changes
from libs.eventstore.blobs import digest_of, stored
from libs.orchestrations import stored as stored_definitions
from libs.orchestrations.definitions import files_key, parse
from libs.readmodels import run_files
from services.planner import orchestrating
from tests.unit.orchestration_fakes import FakeStore, ended, start, started, succeeded

DEFINITION = """
id: orch-files
name: Files flow
state_schema:
  request: {}
  repo: {type: files}
  plan: {}
  summary: {}
  answer: {}
  verdict: {}
steps:
  - {id: step-write, type: agent, name: Write, prompt: "Do {{ request }}", output: summary,
     tools: [read_file, write_file, delete_file], files: repo}
  - {id: step-read, type: agent, name: Read, prompt: "Plan {{ request }}", output: plan,
     tools: [list_files, read_file, search], files: repo}
  - {id: step-talk, type: agent, name: Talk, prompt: "Say {{ plan }}", output: answer}
  - id: step-ok
    type: human
    name: OK?
    prompt: Keep it?
    fields: [{name: verdict, type: select, label: Verdict, options: [keep, drop]}]
"""


@pytest.fixture(autouse=True)
def _fresh_definitions() -> None:
    stored_definitions.definition_of.cache_clear()


def _start(store: FakeStore, files: dict[str, str] | None = None, text: str = DEFINITION) -> CommandReply:
    return start(store, text, message="add a greeting", files=files)


def _started(store: FakeStore, files: dict[str, str] | None = None) -> OrchestrationRun:
    return started(store, DEFINITION, message="add a greeting", files=files)


def _output(written: dict[str, str], deleted: list[str] | None = None, summary: str = "done") -> RunOutput:
    refs, _ = stored("ws", written)
    return RunOutput(files=msgspec.convert(refs, Files), summary=summary, deleted_files=deleted or [])


def _ref(content: str) -> dict[str, Any]:
    return {"digest": digest_of(content), "size": len(content.encode())}


def test_a_step_dispatch_carries_the_tools_it_names_and_its_files_key() -> None:
    store = FakeStore()
    run = _started(store)

    first = run.dispatched
    assert first is not None
    # In the definition's order; the key holds no file yet.
    assert first.tools == ["read_file", "write_file", "delete_file"] and first.files == {}


def test_what_a_writing_step_changed_goes_to_its_files_key_by_digest_for_the_next_step() -> None:
    store = FakeStore()
    run = _started(store)

    orchestrating.on_run_end(run, succeeded(run, _output({"a.py": "A = 1\n", "b.py": "B\n"})), store)  # type: ignore[arg-type]

    assert run.shared_state["repo"] == {"a.py": _ref("A = 1\n"), "b.py": _ref("B\n")}
    assert run.shared_state["summary"] == "done"
    reading = run.dispatched
    assert reading is not None and reading.subtask_id == "step-read@1"
    assert reading.tools == ["list_files", "read_file", "search"]
    assert reading.files == {"a.py": FileRef(digest_of("A = 1\n"), 6), "b.py": FileRef(digest_of("B\n"), 2)}


def test_a_step_without_tools_is_dispatched_no_files_and_no_tools() -> None:
    store = FakeStore()
    run = _started(store)
    orchestrating.on_run_end(run, succeeded(run, _output({"a.py": "A = 1\n"})), store)  # type: ignore[arg-type]
    orchestrating.on_run_end(run, succeeded(run, _output({}, summary="the plan")), store)  # type: ignore[arg-type]

    talking = run.dispatched
    assert talking is not None and talking.subtask_id == "step-talk@1"
    assert talking.tools == [] and talking.files == {} and talking.description == "Say the plan"
    # A step that changed nothing leaves the files key as it was.
    assert run.shared_state["repo"] == {"a.py": _ref("A = 1\n")}


def test_the_step_completed_event_names_the_changes_by_digest_not_by_content() -> None:
    store = FakeStore()
    run = _started(store)
    content = "x" * 10_000

    orchestrating.on_run_end(run, succeeded(run, _output({"big.py": content})), store)  # type: ignore[arg-type]

    [completed] = [e for e in run.collect_events() if isinstance(e, OrchestrationRun.StepCompleted)]
    payload = completed.payload
    assert payload.files_key == "repo"
    assert payload.changes == Changes(files={"big.py": FileRef(digest_of(content), 10_000)}, deleted=[])
    assert content not in msgspec.json.encode(payload).decode()


def test_a_later_step_writes_over_and_deletes_from_the_files_key() -> None:
    state = with_changes(
        None, Changes(files={"a.py": FileRef("sha256:1", 1), "b.py": FileRef("sha256:2", 2)}, deleted=[])
    )
    state = with_changes(state, Changes(files={"a.py": FileRef("sha256:3", 3)}, deleted=["b.py", "gone.py"]))

    assert state == {"a.py": {"digest": "sha256:3", "size": 3}}


def test_a_retried_step_starts_from_the_failed_attempts_changes_and_a_released_one_keeps_them() -> None:
    store = FakeStore()
    run = _started(store)
    first = run.dispatched
    assert first is not None
    broken = _output({"a.py": "def (:\n"})
    failed = RunFailed(
        task_id=str(run.id),
        subtask_id=first.subtask_id,
        provider="anthropic",
        model="m",
        error="checks failed",
        usage={},
        attempt=1,
        retryable=True,
        output=broken,
    )
    orchestrating.on_run_end(run, ended(run, failed), store)  # type: ignore[arg-type]
    second = run.dispatched
    assert second is not None and second.attempt == 2
    assert (second.previous_error, second.previous_output) == ("checks failed", broken)

    released = RunReleased(
        task_id=str(run.id),
        subtask_id=second.subtask_id,
        provider="anthropic",
        model="m",
        attempt=2,
        handover=0,
        session_id="s",
        reason=None,
        usage={},
    )
    orchestrating.on_run_end(run, ended(run, released), store)  # type: ignore[arg-type]
    third = run.dispatched
    assert third is not None and (third.attempt, third.handover) == (2, 1)
    assert (third.previous_error, third.previous_output) == ("checks failed", broken)


def test_the_run_pauses_with_the_files_key_in_its_state() -> None:
    store = FakeStore()
    run = _started(store)
    for output in (_output({"a.py": "A\n"}), _output({}, summary="plan"), _output({}, summary="said")):
        orchestrating.on_run_end(run, succeeded(run, output), store)  # type: ignore[arg-type]

    assert run.status == PAUSED
    assert run.shared_state == {
        "request": "add a greeting",
        "repo": {"a.py": _ref("A\n")},
        "summary": "done",
        "plan": "plan",
        "answer": "said",
    }


# --- a run's files at its start ------------------------------------------------------------------


def test_a_runs_files_fill_its_files_key_by_digest_and_are_stored_once_as_blobs() -> None:
    store = FakeStore()
    files = {"src/app.py": "print('hi')\n", "README.md": "# app\n", "copy.md": "# app\n"}

    run = _started(store, files)

    assert run.shared_state == {
        "request": "add a greeting",
        "repo": {"src/app.py": _ref("print('hi')\n"), "README.md": _ref("# app\n"), "copy.md": _ref("# app\n")},
    }
    assert store.blobs.saved[digest_of("print('hi')\n")] == "print('hi')\n"
    assert store.blobs.saved[digest_of("# app\n")] == "# app\n"
    first = run.dispatched
    assert first is not None
    assert first.files == {path: FileRef(digest_of(c), len(c.encode())) for path, c in files.items()}


def test_files_for_a_definition_without_a_files_key_are_refused_and_nothing_is_saved() -> None:
    store = FakeStore()
    without = DEFINITION.replace("  repo: {type: files}\n", "").replace(", files: repo}", "}")
    without = without.replace("tools: [read_file, write_file, delete_file]", "tools: []")
    without = without.replace("tools: [list_files, read_file, search]", "tools: []")

    reply = _start(store, {"a.py": "A\n"}, without)

    assert reply.error is not None and reply.error.status == 400
    assert reply.error.message == "orchestration orch-files has no state key of type files: it takes no files"
    assert store.aggregates == [] and store.blobs.saved == {}
    assert _start(store, None, without).error is None  # without files it runs


@pytest.mark.parametrize("path", ["../etc/passwd", "/abs.py", ".git/config", "a//b.py"])
def test_a_path_a_repository_may_not_hold_is_refused_by_the_owner_too(path: str) -> None:
    store = FakeStore()

    reply = _start(store, {path: "x"})

    assert reply.error is not None and reply.error.status == 400 and path in reply.error.message
    assert store.aggregates == []


def test_the_run_body_takes_files_and_names_a_path_it_refuses() -> None:
    body = msgspec.json.decode(b'{"message": "m", "files": {"src/a.py": "A"}}', type=RunOrchestration)
    assert body.files == {"src/a.py": "A"}
    assert msgspec.json.decode(b'{"message": "m"}', type=RunOrchestration).files is None
    with pytest.raises(msgspec.ValidationError, match=r"\.\./x\.py"):
        msgspec.json.decode(b'{"message": "m", "files": {"../x.py": "A"}}', type=RunOrchestration)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"message": "m", "files": {"a.py": 3}}', type=RunOrchestration)


def test_the_files_key_is_the_first_of_type_files() -> None:
    assert files_key(parse(DEFINITION, "files.yaml").orchestration) == "repo"
    second = DEFINITION.replace("  plan: {}\n", "  plan: {}\n  other: {type: files}\n")
    assert files_key(parse(second, "files.yaml").orchestration) == "repo"


class LoadingBlobs:
    """Loads from what was stored, and counts its loads."""

    def __init__(self, files: dict[str, str]) -> None:
        self.refs, blobs = stored("ws", files)
        self.saved = {b.digest: b.content.decode() for b in blobs}
        self.loads = 0

    def load(self, workspace_id: str, digests: Any) -> dict[str, str]:
        self.loads += 1
        return {d: self.saved[d] for d in digests}


def test_an_answers_shared_state_shows_a_files_key_with_its_contents() -> None:
    blobs = LoadingBlobs({"a.py": "A\n", "b.py": "B\n"})
    state = {"request": "r", "repo": blobs.refs, "count": 3, "ok": True}

    shown = run_files.with_contents(blobs, "ws", state)  # type: ignore[arg-type]

    assert shown == {"request": "r", "repo": {"a.py": "A\n", "b.py": "B\n"}, "count": 3, "ok": True}
    assert state["repo"] == blobs.refs  # the row it was given is left as it was
    assert run_files.with_contents(blobs, "ws", {"request": "r"}) == {"request": "r"}  # type: ignore[arg-type]
    assert blobs.loads == 1  # none for a state without a files key


def test_an_answers_shared_state_shows_a_long_answer_and_files_from_one_load() -> None:
    report = "# Owls\n" + "They hoot. " * 1000
    blobs = LoadingBlobs({"a.py": "A\n", "report": report})
    files, answer = {"a.py": blobs.refs["a.py"]}, blobs.refs["report"]
    old = {"a.py": "inline\n"}  # a files key from an event stored before blobs: contents inline
    state = {"request": "r", "repo": files, "report": answer, "old": old, "empty": {}}

    shown = run_files.with_contents(blobs, "ws", state)  # type: ignore[arg-type]

    assert shown == {"request": "r", "repo": {"a.py": "A\n"}, "report": report, "old": old, "empty": {}}
    assert blobs.loads == 1
