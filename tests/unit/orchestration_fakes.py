"""What the planner's orchestration handlers read and write, without a database: the blobs a run
stored (its definition, its files, its long values) and the aggregates saved; a load finds only
the steps' Runs a test made (any other reads as none: its turns read as 0). And the helpers the
tests of those handlers share: a run started from a definition's text, its step's Run ended."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from contracts.commands import CommandReply, StartOrchestrationCommand
from contracts.events import Event
from contracts.payloads.input_gate import InputGateAnswered
from contracts.payloads.run import RunSucceeded
from contracts.payloads.shapes import RunOutput
from libs.domain.orchestration_run import OrchestrationRun
from libs.domain.run import Claim, Run
from libs.eventstore.blobs import carried, carry_done
from libs.orchestrations.definitions import parse
from services.planner import orchestrating

MODEL = "claude-sonnet-4-20250514"  # $3 / $15 per million input / output tokens


class FakeBlobs:
    def __init__(self) -> None:
        self.saved: dict[str, str] = {}
        self.loads = 0

    def load(self, workspace_id: str, digests: Any) -> dict[str, str]:
        self.loads += 1
        return {d: self.saved[d] for d in digests}


class FakeStore:
    def __init__(self) -> None:
        self.blobs = FakeBlobs()
        self.aggregates: list[Any] = []
        self.runs: dict[UUID, Run] = {}

    def save(self, aggregates: list[Any], blobs: Any = ()) -> int:
        # As `EventStore.save`: the blobs given, and those the aggregates carry.
        for blob in [*blobs, *carried(aggregates)]:
            self.blobs.saved[blob.digest] = blob.content.decode()
        carry_done(aggregates)
        self.aggregates.extend(aggregates)
        return 42

    def load(self, aggregate_id: Any) -> Any:
        return self.runs.get(aggregate_id)


def start(
    store: FakeStore,
    definition: str,
    message: str = "owls",
    max_cost_usd: float | None = None,
    files: dict[str, str] | None = None,
) -> CommandReply:
    """The planner's answer to a start of the definition (its YAML text)."""
    parsed = parse(definition, "test.yaml")
    command = StartOrchestrationCommand(
        workspace_id="ws",
        orchestration=msgspec.to_builtins(parsed.orchestration),
        digest=parsed.digest,
        message=message,
        max_cost_usd=max_cost_usd,
        files=files,
    )
    return orchestrating.start(msgspec.json.encode(command), store)  # type: ignore[arg-type]


def started(store: FakeStore, definition: str, **start_args: Any) -> OrchestrationRun:
    """The run a start made (`start`'s arguments); the start must have been taken."""
    assert start(store, definition, **start_args).error is None
    run: OrchestrationRun = store.aggregates[-1]
    return run


def ended(run: OrchestrationRun, payload: Any, seq: int = 7) -> Event[Any]:
    """How the Run of the run's current step ended (`payload`), as the planner is handed it."""
    assert run.dispatched is not None
    return Event(
        seq=seq,
        type="run.x",
        workspace_id="ws",
        aggregate_id=run.dispatched.run_id,
        version=3,
        occurred_at=0,
        payload=payload,
    )


def succeeded(run: OrchestrationRun, output: RunOutput, usage: dict[str, int] | None = None) -> Event[RunSucceeded]:
    """The Run of the run's current step succeeded with `output`."""
    assert run.dispatched is not None
    p = RunSucceeded(
        task_id=str(run.id),
        subtask_id=run.dispatched.subtask_id,
        provider="anthropic",
        model=MODEL,
        output=output,
        usage=usage if usage is not None else {"input_tokens": 10, "output_tokens": 2},
        attempt=run.dispatched.attempt,
    )
    return ended(run, p)


def claimed(run: OrchestrationRun, store: FakeStore) -> Run:
    """The Run the step's dispatch names, claimed by the executor as it claims one (the store
    finds it, for the turns it counts)."""
    d = run.dispatched
    assert d is not None
    claim = Claim(session_id=None, lease_until=1, lease_ttl_s=2, token_hash="h")
    made = Run.start(
        "ws", str(run.id), d.subtask_id, d.agent_type, d.attempt, "anthropic", MODEL, claim=claim, handover=d.handover
    )
    assert str(made.id) == d.run_id
    store.runs[made.id] = made
    return made


def end_of(step_run: Run) -> Event[Any]:
    """The Run's last event (its end), as the planner is handed it."""
    last = step_run.collect_events()[-1]
    return Event(
        seq=9, type="run.x", workspace_id="ws", aggregate_id=str(step_run.id), version=9, occurred_at=0,
        payload=last.payload,
    )  # fmt: skip


def answered(run: OrchestrationRun, step_id: str, gate: str, response: dict[str, Any]) -> Event[InputGateAnswered]:
    """Review recorded `response` to the run's `gate` at its human step `step_id`."""
    p = InputGateAnswered(task_id=str(run.id), run_id=run.run_id, step_id=step_id, gate=gate, response=response)
    return Event(
        seq=9, type="input_gate.answered", workspace_id="ws", aggregate_id="g", version=2, occurred_at=0, payload=p
    )
