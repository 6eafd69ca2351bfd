"""The planner and a workspace's purge, on a real event store: the orchestration runs the purge
stopped fail, one in an agent step and one paused at its gate, and the step's Run ending after the
purge takes neither further; another workspace's run goes on."""

from __future__ import annotations

import msgspec
import pytest

from contracts.commands import StartOrchestrationCommand
from contracts.events import EventEnvelope
from contracts.payloads.shapes import RunOutput
from libs.domain.orchestration_run import FAILED, PAUSED, OrchestrationRun, orchestration_run_id
from libs.domain.run import Run
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.orchestrations import stored as stored_definitions
from libs.orchestrations.definitions import parse
from services.planner import handlers, orchestrating

pytestmark = pytest.mark.integration

WS, OTHER = "ws-purged-runs", "ws-kept-runs"
DEFINITION = """
id: orch-purge
name: Write then approve
state_schema:
  topic: {}
  notes: {}
  ok: {type: boolean}
steps:
  - {id: step-write, type: agent, name: Write, prompt: "Write about {{ topic }}", output: notes}
  - {id: step-ok, type: human, name: Approve, prompt: "Publish?", fields: [{name: ok, type: bool, label: OK}]}
"""


@pytest.fixture(autouse=True)
def _fresh_definitions() -> None:
    stored_definitions.definition_of.cache_clear()  # a definition read from another test's database


def start(store: EventStore, workspace_id: str, message: str) -> OrchestrationRun:
    definition = parse(DEFINITION, "purge.yaml")
    command = StartOrchestrationCommand(
        workspace_id=workspace_id,
        orchestration=msgspec.to_builtins(definition.orchestration),
        digest=definition.digest,
        message=message,
    )
    reply = orchestrating.start(msgspec.json.encode(command), store)
    assert reply.error is None and reply.run_id is not None, reply
    return load(store, reply.run_id)


def load(store: EventStore, run_id: str) -> OrchestrationRun:
    found = store.load(orchestration_run_id(run_id))
    assert isinstance(found, OrchestrationRun)
    return found


def handle(store: EventStore, events: list[EventEnvelope]) -> list[EventEnvelope]:
    """One planner batch, saved as the consumer saves it; what it appended."""
    head = store.head()
    store.save(handlers.on_events(events, store))
    return store.read(head, 1000)


def step_run(store: EventStore, run: OrchestrationRun) -> Run:
    """The executor claims the run's step: its Run, started."""
    d = run.dispatched
    assert d is not None
    made = Run.start(run.workspace_id, str(run.id), d.subtask_id, d.agent_type, d.attempt, "anthropic", "m")
    store.save([made])
    return made


def succeeded(store: EventStore, made: Run) -> list[EventEnvelope]:
    """The step's Run succeeds; its end, as the planner is handed it."""
    made.succeed(RunOutput(files={}, summary="owls hoot"), {"input_tokens": 1, "output_tokens": 1}, 5, 1)
    head = store.head()
    store.save([made])
    return [e for e in store.read(head, 1000) if e.type == "run.succeeded"]


def types_of(events: list[EventEnvelope], run: OrchestrationRun) -> list[str]:
    return [e.type for e in events if e.aggregate_id == str(run.id)]


def test_the_purged_workspaces_runs_fail_and_a_step_ending_after_the_purge_changes_nothing(
    store: EventStore,
) -> None:
    purged, kept = Workspace.create(WS, "purged"), Workspace.create(OTHER, "kept")
    store.save([purged, kept])
    working, paused, other = start(store, WS, "owls"), start(store, WS, "bats"), start(store, OTHER, "newts")
    handle(store, succeeded(store, step_run(store, paused)))
    assert load(store, paused.run_id).status == PAUSED
    late, going = step_run(store, working), step_run(store, other)

    purged.purge(["todos"], [str(working.id), str(paused.id)], [])
    head = store.head()
    store.save([purged])
    appended = handle(store, store.read(head, 1000))

    assert types_of(appended, working) == types_of(appended, paused) == ["orchestration_run.failed"]
    for run in (working, paused):
        failed = load(store, run.run_id)
        assert (failed.status, failed.response) == (FAILED, "the workspace was purged")
    # The step's Run still ends (an executor that had not heard of the purge): nothing follows.
    assert handle(store, succeeded(store, late)) == []
    assert load(store, working.run_id).status == FAILED
    # Another workspace's run was not stopped: its step's end takes it to its gate.
    moved = handle(store, succeeded(store, going))
    assert "orchestration_run.paused" in types_of(moved, other)
    assert load(store, other.run_id).status == PAUSED
