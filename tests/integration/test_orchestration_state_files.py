"""An orchestration run's files key on a real store and read model: the run's files and a step's
changes, by digest, fold into the same `shared_state` in the aggregate and in
`rm_orchestration_runs`, which rebuilds from the log as it was, and the answer's contents load
from the blobs stored with the events that name them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import StartOrchestrationCommand
from contracts.events import Event
from contracts.payloads.run import RunSucceeded
from contracts.payloads.shapes import Files, RunOutput
from libs.domain.orchestration_run import PAUSED, OrchestrationRun, orchestration_run_id
from libs.eventstore.blobs import stored
from libs.eventstore.store import EventStore
from libs.orchestrations import stored as stored_definitions
from libs.orchestrations.definitions import parse
from libs.readmodels import projector, run_files, schema
from services.planner import orchestrating

pytestmark = pytest.mark.integration

WS = "ws-orchestration-files"
CODE_CHANGE = Path(__file__).resolve().parents[2] / "orchestrations" / "code-change.yaml"
FILES = {"src/app.py": "def main():\n    return 1\n", "old.txt": "obsolete\n", "README.md": "# app\n"}


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


def _succeed(run: OrchestrationRun, store: EventStore, seq: int, written: dict[str, str], deleted: list[str]) -> None:
    """The step's Run succeeds having changed `written` and `deleted`; its files' blobs are stored
    with it, as the executor stores them with a Run's end."""
    assert run.dispatched is not None
    refs, blobs = stored(WS, written)
    output = RunOutput(files=msgspec.convert(refs, Files), summary=f"changed {sorted(written)}", deleted_files=deleted)
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
    store.save([run], blobs=blobs)


def _row_state(conn: psycopg.Connection, run: OrchestrationRun) -> dict[str, Any]:
    row = conn.execute("SELECT shared_state FROM rm_orchestration_runs WHERE id = %s", (run.id,)).fetchone()
    assert row is not None
    state: dict[str, Any] = row[0]
    return state


def test_a_runs_files_and_its_steps_changes_read_back_alike_from_the_aggregate_and_the_read_model(
    store: EventStore, conn: psycopg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored_definitions.definition_of.cache_clear()
    definition = parse(CODE_CHANGE.read_text(), CODE_CHANGE.name)
    command = StartOrchestrationCommand(
        workspace_id=WS,
        orchestration=msgspec.to_builtins(definition.orchestration),
        digest=definition.digest,
        message="greet the user",
        files=FILES,
    )
    reply = orchestrating.start(msgspec.json.encode(command), store)
    assert reply.error is None and reply.run_id is not None
    run = store.load(orchestration_run_id(reply.run_id))
    assert isinstance(run, OrchestrationRun)
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
