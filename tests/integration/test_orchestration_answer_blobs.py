"""A step's long answer on a real store and read model: stored once as a blob with the event that
names it by digest, held by digest in the run's state (aggregate and `rm_orchestration_runs`, which
rebuilds from the log as it was), and read back whole by the next step's prompt and by the answer;
an answer stored inline before long answers were blobs still reads."""

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
from contracts.payloads.shapes import RunOutput
from libs.domain.orchestration_run import OrchestrationRun, orchestration_run_id
from libs.eventstore.blobs import BLOBS_TABLE, digest_of
from libs.eventstore.store import EventStore
from libs.orchestrations import stored as stored_definitions
from libs.orchestrations.definitions import parse
from libs.readmodels import projector, run_files, schema
from services.planner import orchestrating

pytestmark = pytest.mark.integration

WS = "ws-long-answers"
RESEARCH_REPORT = Path(__file__).resolve().parents[2] / "orchestrations" / "research-report.yaml"
RESEARCH = "Owls hunt at night; their feathers are silent (Smith, 2021).\n" * 200  # 12 KB


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


def _started(store: EventStore) -> OrchestrationRun:
    stored_definitions.definition_of.cache_clear()
    definition = parse(RESEARCH_REPORT.read_text(), RESEARCH_REPORT.name)
    command = StartOrchestrationCommand(
        workspace_id=WS,
        orchestration=msgspec.to_builtins(definition.orchestration),
        digest=definition.digest,
        message="owls",
    )
    reply = orchestrating.start(msgspec.json.encode(command), store)
    assert reply.error is None and reply.run_id is not None
    run = store.load(orchestration_run_id(reply.run_id))
    assert isinstance(run, OrchestrationRun)
    return run


def _succeeded(run: OrchestrationRun, summary: str) -> Event[RunSucceeded]:
    assert run.dispatched is not None
    payload = RunSucceeded(
        task_id=str(run.id),
        subtask_id=run.dispatched.subtask_id,
        provider="anthropic",
        model="claude-sonnet-4-20250514",
        output=RunOutput(files={}, summary=summary),
        usage={"input_tokens": 100, "output_tokens": 20},
        attempt=run.dispatched.attempt,
    )
    return Event(
        seq=10, type="run.succeeded", workspace_id=WS, aggregate_id=run.dispatched.run_id, version=3, occurred_at=0,
        payload=payload,
    )  # fmt: skip


def _state(conn: psycopg.Connection, run: OrchestrationRun) -> dict[str, Any]:
    row = conn.execute("SELECT shared_state FROM rm_orchestration_runs WHERE id = %s", (run.id,)).fetchone()
    assert row is not None
    state: dict[str, Any] = row[0]
    return state


def test_a_long_answer_is_a_blob_by_digest_in_the_log_and_the_read_model_and_reads_back_whole(
    store: EventStore, conn: psycopg.Connection, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _started(store)
    orchestrating.on_run_end(run, _succeeded(run, RESEARCH), store)  # type: ignore[arg-type]
    head = store.save([run])  # as the planner's consumer saves it: the blob goes with the event

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
        assert orchestrating.state_of(loaded, fresh)["research_results"] == RESEARCH  # type: ignore[arg-type]
        assert loaded.dispatched is not None and RESEARCH in loaded.dispatched.description

        projector.catch_up(store, conn)
        state = _state(conn, run)
        assert state == loaded.shared_state
        shown = run_files.with_contents(fresh.blobs, WS, state)
        assert shown == {"query": "owls", "research_results": RESEARCH}
    finally:
        fresh.close()

    before = conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall()
    monkeypatch.setattr(projector, "BATCH", 1)
    schema.drop(conn)
    schema.create(conn)
    assert projector.catch_up(store, conn) == head
    assert conn.execute("SELECT t::text FROM rm_orchestration_runs t").fetchall() == before


def test_a_long_answer_stored_inline_before_blobs_still_reads(store: EventStore, conn: psycopg.Connection) -> None:
    run = _started(store)
    # As the planner wrote it before long answers were blobs: the whole answer in the event.
    old = OrchestrationRunStepCompleted(step_id="step-research", output="research_results", value=RESEARCH, turns=1)
    run.complete_step(old)
    store.save([run])

    projector.catch_up(store, conn)

    loaded = store.load(run.id)
    assert isinstance(loaded, OrchestrationRun) and loaded.shared_state["research_results"] == RESEARCH
    state = _state(conn, run)
    assert state["research_results"] == RESEARCH
    assert run_files.with_contents(store.blobs, WS, state) == state
