"""An orchestration run's state on a real store and read model: the run's files and a step's
changes, by digest, and a step's long answer, a blob by digest, fold into the same `shared_state`
in the aggregate and in `rm_orchestration_runs`, which rebuilds from the log as it was, and the
answer's contents load from the blobs stored with the events that name them; a long answer
stored inline before long answers were blobs still reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import StartOrchestrationCommand
from contracts.events import Event
from contracts.payloads.orchestration_run import OrchestrationRunStepCompleted
from contracts.payloads.run import RunSucceeded
from contracts.payloads.shapes import Files, RunOutput
from libs.domain.orchestration_run import PAUSED, OrchestrationRun, orchestration_run_id
from libs.eventstore.blobs import BLOBS_TABLE, digest_of, stored
from libs.eventstore.store import EventStore
from libs.orchestrations import stored as stored_definitions
from libs.orchestrations.definitions import parse
from libs.readmodels import projector, run_files, schema
from services.planner import orchestrating

pytestmark = pytest.mark.integration

WS = "ws-orchestration-files"
CODE_CHANGE = Path(__file__).resolve().parents[2] / "orchestrations" / "code-change.yaml"
RESEARCH_REPORT = CODE_CHANGE.with_name("research-report.yaml")
RESEARCH = "Owls hunt at night; their feathers are silent (Smith, 2021).\n" * 200  # 12 KB
FILES = {"src/app.py": "def main():\n    return 1\n", "old.txt": "obsolete\n", "README.md": "# app\n"}


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


def _started(store: EventStore, path: Path, message: str, files: dict[str, str] | None = None) -> OrchestrationRun:
    """A run of the definition at `path`, started by the planner and read back from the store."""
    stored_definitions.definition_of.cache_clear()
    definition = parse(path.read_text(), path.name)
    command = StartOrchestrationCommand(
        workspace_id=WS,
        orchestration=msgspec.to_builtins(definition.orchestration),
        digest=definition.digest,
        message=message,
        files=files,
    )
    reply = orchestrating.start(msgspec.json.encode(command), store)
    assert reply.error is None and reply.run_id is not None
    run = store.load(orchestration_run_id(reply.run_id))
    assert isinstance(run, OrchestrationRun)
    return run


def _succeed(
    run: OrchestrationRun,
    store: EventStore,
    seq: int,
    written: dict[str, str],
    deleted: list[str],
    summary: str | None = None,
) -> int:
    """The step's Run succeeds having changed `written` and `deleted`; its files' blobs are stored
    with it, as the executor stores them with a Run's end; the planner's consumer saves the run
    (with the blobs it carries). The seq of that save."""
    assert run.dispatched is not None
    refs, blobs = stored(WS, written)
    summary = f"changed {sorted(written)}" if summary is None else summary
    output = RunOutput(files=msgspec.convert(refs, Files), summary=summary, deleted_files=deleted)
    payload = RunSucceeded(
        task_id=str(run.id),
        subtask_id=run.dispatched.subtask_id,
        provider="anthropic",
        model="claude-sonnet-4-20250514",
        output=output,
        usage={"input_tokens": 100, "output_tokens": 20},
        attempt=run.dispatched.attempt,
    )
    event = Event(
        seq=seq, type="run.succeeded", workspace_id=WS, aggregate_id=run.dispatched.run_id, version=3,
        occurred_at=0, payload=payload,
    )  # fmt: skip
    orchestrating.on_run_end(run, event, store)
    return store.save([run], blobs=blobs)


def _row_state(conn: psycopg.Connection, run: OrchestrationRun) -> dict[str, Any]:
    row = conn.execute("SELECT shared_state FROM rm_orchestration_runs WHERE id = %s", (run.id,)).fetchone()
    assert row is not None
    state: dict[str, Any] = row[0]
    return state


def test_a_runs_files_and_its_steps_changes_read_back_alike_from_the_aggregate_and_the_read_model(
    store: EventStore, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _started(store, CODE_CHANGE, "greet the user", FILES)
    _succeed(run, store, 10, {}, [])  # the plan: reads, changes nothing
    new_app = "def main():\n    print('hello')\n"
    _succeed(run, store, 11, {"src/app.py": new_app, "src/greet.py": "HELLO = 1\n"}, ["old.txt"])

    projector.catch_up(store, conn)

    live = store.load(run.id)
    assert isinstance(live, OrchestrationRun) and live.status == PAUSED
    state = _row_state(conn, run)
    assert state == live.shared_state
    assert sorted(state["files"]) == ["README.md", "src/app.py", "src/greet.py"]
    assert run_files.with_contents(store.blobs, WS, state)["files"] == {
        "README.md": "# app\n",
        "src/app.py": new_app,
        "src/greet.py": "HELLO = 1\n",
    }

    before = conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall()
    monkeypatch.setattr(projector, "BATCH", 1)
    schema.drop(conn)
    schema.create(conn)
    projector.catch_up(store, conn)
    assert conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall() == before


def test_a_long_answer_is_a_blob_by_digest_in_the_log_and_the_read_model_and_reads_back_whole(
    store: EventStore, conn: psycopg.Connection, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _started(store, RESEARCH_REPORT, "owls")
    head = _succeed(run, store, 10, {}, [], summary=RESEARCH)

    ref = {"digest": digest_of(RESEARCH), "size": len(RESEARCH.encode())}
    [completed] = [e for e in store.read(0) if e.type == "orchestration_run.step_completed"]
    assert completed.payload["value"] is None and completed.payload["value_ref"] == ref
    assert len(msgspec.json.encode(completed.payload)) < 400, "the event names the answer, it does not hold it"
    blob = f"SELECT content FROM {BLOBS_TABLE} WHERE workspace_id = %s AND digest = %s"
    assert bytes(conn.execute(blob, (WS, ref["digest"])).fetchone()[0]).decode() == RESEARCH  # type: ignore[index]

    # Another process (no blob cached) reads the run: its state by digest, its prompts whole.
    fresh = EventStore(postgres_url)
    try:
        loaded = fresh.load(run.id)
        assert isinstance(loaded, OrchestrationRun) and loaded.shared_state["research_results"] == ref
        assert orchestrating.state_of(loaded, fresh)["research_results"] == RESEARCH
        assert loaded.dispatched is not None and RESEARCH in loaded.dispatched.description

        projector.catch_up(store, conn)
        state = _row_state(conn, run)
        assert state == loaded.shared_state
        assert run_files.with_contents(fresh.blobs, WS, state) == {"query": "owls", "research_results": RESEARCH}
    finally:
        fresh.close()

    before = conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall()
    monkeypatch.setattr(projector, "BATCH", 1)
    schema.drop(conn)
    schema.create(conn)
    assert projector.catch_up(store, conn) == head
    assert conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall() == before


def test_a_long_answer_stored_inline_before_blobs_still_reads(store: EventStore, conn: psycopg.Connection) -> None:
    run = _started(store, RESEARCH_REPORT, "owls")
    # As the planner wrote it before long answers were blobs: the whole answer in the event.
    old = OrchestrationRunStepCompleted(step_id="step-research", output="research_results", value=RESEARCH, turns=1)
    run.complete_step(old)
    store.save([run])

    projector.catch_up(store, conn)

    loaded = store.load(run.id)
    assert isinstance(loaded, OrchestrationRun) and loaded.shared_state["research_results"] == RESEARCH
    state = _row_state(conn, run)
    assert state["research_results"] == RESEARCH
    assert run_files.with_contents(store.blobs, WS, state) == state
