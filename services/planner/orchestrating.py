"""Runs of spec 004's definitions, step by step (docs/orchestrations.md §2).

An agent step is a Run of the executor: the planner appends `orchestration_run.step_dispatched`
(a subtask dispatch's shape) and goes on when that Run ends (`run.succeeded`, `run.failed`: their
`task_id` is the orchestration run's id). A condition is decided at once; a human step pauses the
run. What a run follows is the definition it stored at its start, read back by digest.
"""

from __future__ import annotations

import functools
import logging
import time
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, StartOrchestrationCommand
from contracts.events import Event
from contracts.files import FileRef
from contracts.orchestrations import AgentStep, ConditionStep, HumanField, HumanStep, Orchestration, Step
from contracts.payloads.orchestration_run import (
    OrchestrationRunPaused,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepRetried,
)
from contracts.payloads.run import RunBudgetStopped, RunFailed, RunLeaseExpired, RunReleased, RunSucceeded
from libs.domain.errors import DomainError
from libs.domain.orchestration_run import RUNNING, OrchestrationRun
from libs.domain.run import Run, run_id_for
from libs.eventstore.blobs import stored
from libs.eventstore.store import EventStore
from libs.orchestrations.checks import PLACEHOLDER, check
from libs.orchestrations.definitions import digest_of
from libs.pricing import PriceTable

log = logging.getLogger(__name__)

AGENT_TYPE = "orchestration"  # the executor's role for an agent step (libs/agent/prompts.py)
MAX_ATTEMPTS = 3  # an agent step's Run is tried again this often when it fails retryably
START_ATTEMPTS = 8
MAX_TOKENS = 4096
VISIT = "@"  # subtask id = step id @ visit: a step entered again is a new Run

RunEnd = RunSucceeded | RunFailed | RunBudgetStopped | RunReleased


def start(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=StartOrchestrationCommand)
        orchestration = msgspec.convert(command.orchestration, Orchestration)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    # The gateway checked it; the owner checks again because it is the owner.
    if check(orchestration) or digest_of(orchestration) != command.digest:
        return CommandReply(error=CommandError(400, "invalid_request", "the definition does not check out"))
    canonical = msgspec.json.encode(orchestration, order="sorted").decode()
    refs, blobs = stored(command.workspace_id, {"definition": canonical})
    definition = msgspec.convert(refs["definition"], FileRef)
    first_key = next(iter(orchestration.state_schema))
    limit = command.max_cost_usd if command.max_cost_usd is not None else orchestration.max_cost_usd
    now = int(time.time() * 1000)
    for attempt in range(START_ATTEMPTS):
        # Spec 004's run ids carry the start's milliseconds; two starts in one millisecond
        # conflict on the derived aggregate id, and the second takes the next one.
        run_id = f"run_{orchestration.id}_{now + attempt}"
        run = OrchestrationRun.start(
            command.workspace_id,
            run_id,
            orchestration.id,
            command.digest,
            definition,
            command.message,
            first_key,
            limit,
        )
        advance(run, orchestration, 0)
        try:
            seq = store.save([run], blobs=blobs)
        except IntegrityError:
            continue
        return CommandReply(seq=seq, run_id=run_id, status=run.status)
    return CommandReply(error=CommandError(503, "service_unavailable", "too many runs start at once; try again"))


def definition_of(run: OrchestrationRun, store: EventStore) -> Orchestration:
    return _definition(store, run.workspace_id, run.definition.digest)


@functools.lru_cache(maxsize=256)
def _definition(store: EventStore, workspace_id: str, digest: str) -> Orchestration:
    # A blob never changes: a definition read once is the same for every later step.
    content = store.blobs.load(workspace_id, [digest])[digest]
    return msgspec.json.decode(content, type=Orchestration)


def advance(run: OrchestrationRun, orchestration: Orchestration, at: int) -> None:
    """From step `at` on: conditions are decided at once, up to the next agent step (dispatched)
    or human step (the run pauses), or the end (the run completes)."""
    steps = orchestration.steps
    index = {s.id: i for i, s in enumerate(steps)}
    while at < len(steps):
        step = steps[at]
        if isinstance(step, ConditionStep) and run.visits.get(step.id, 0) >= step.max_visits:
            run.fail(f"step {step.id} was entered more than {step.max_visits} times")
            return
        visit = run.start_step(step.id, step.name, _kind(step))
        if isinstance(step, AgentStep):
            run.dispatch_step(_dispatch(run, step, visit, 1))
            return
        if isinstance(step, HumanStep):
            run.pause(_paused(run, step))
            return
        taken = run.shared_state.get(step.key) == step.equals
        run.complete_step(OrchestrationRunStepCompleted(step_id=step.id, next_step=step.goto if taken else None))
        at = index[step.goto] if taken else at + 1
    run.complete(f"{orchestration.name} complete.")


def _kind(step: Step) -> str:
    return "agent" if isinstance(step, AgentStep) else "human" if isinstance(step, HumanStep) else "condition"


def render(template: str, state: dict[str, Any]) -> str:
    """A `{{ key }}` template over the state; a key not written yet reads as empty."""
    return PLACEHOLDER.sub(lambda m: _text(state.get(m.group(1))), template)


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _dispatch(
    run: OrchestrationRun,
    step: AgentStep,
    visit: int,
    attempt: int,
    handover: int = 0,
    error: str | None = None,
    previous_run_id: str | None = None,
) -> OrchestrationRunStepDispatched:
    subtask_id = f"{step.id}{VISIT}{visit}"
    config = {"model": step.model, "provider": str(step.provider), "maxTokens": MAX_TOKENS, "maxTurns": step.max_turns}
    return OrchestrationRunStepDispatched(
        subtask_id=subtask_id,
        agent_type=AGENT_TYPE,
        description=render(step.prompt, run.shared_state),
        files={},  # TODO(issue 17): the state's `files` key for a step with the repository tools
        config=config,
        attempt=attempt,
        previous_error=error,
        run_id=str(run_id_for(str(run.id), subtask_id, attempt, handover)),
        handover=handover,
        previous_run_id=previous_run_id,
    )


def _paused(run: OrchestrationRun, step: HumanStep) -> OrchestrationRunPaused:
    fields = [_field(f) for f in step.fields]
    context = render(step.agent_context, run.shared_state) if step.agent_context else None
    return OrchestrationRunPaused(step_id=step.id, prompt=step.prompt, fields=fields, agent_context=context)


def _field(field: HumanField) -> dict[str, Any]:
    """A field as spec 004 shows it: a select's options joined by commas, no options otherwise."""
    shown = {k: v for k, v in msgspec.to_builtins(field).items() if k != "options"}
    return {**shown, "options": ",".join(field.options)} if field.type == "select" else shown


# --- the end of an agent step's Run ------------------------------------------------------------


@functools.cache
def _prices() -> PriceTable:
    return PriceTable.from_env()


def on_run_end(run: OrchestrationRun, event: Event[Any], store: EventStore) -> None:
    """The Run of the run's current agent step ended: its output is written to the state and the
    run goes on, or it is tried again, or the run fails. A stale one (an earlier attempt's, a
    finished run's) changes nothing."""
    p: RunEnd = event.payload
    current = run.dispatched
    if run.status != RUNNING or current is None or current.run_id != event.aggregate_id:
        log.info("ignored %s (seq %d) for orchestration run %s", event.type, event.seq, run.run_id)
        return
    orchestration = definition_of(run, store)
    step_id = current.subtask_id.rpartition(VISIT)[0]
    at = next(i for i, s in enumerate(orchestration.steps) if s.id == step_id)
    step = orchestration.steps[at]
    assert isinstance(step, AgentStep)
    visit = run.visits[step_id]
    # What the step's earlier attempts spent, and this Run: the step's entry shows them all.
    turns, cost = _spent(event, store)
    before_turns, before_cost = run.step_spent
    total_turns, total_cost = before_turns + turns, before_cost + cost
    try:
        if isinstance(p, RunReleased):  # given back by an agent session: the same attempt, anew
            c = current
            again = _dispatch(run, step, visit, c.attempt, c.handover + 1, c.previous_error, c.previous_run_id)
            run.retry_step(_retried(step_id, event, p.reason or "given back", turns, cost), again)
        elif isinstance(p, RunSucceeded):
            done = OrchestrationRunStepCompleted(
                step_id=step_id,
                output=step.output,
                value=p.output.summary,
                turns=total_turns,
                cost_usd=total_cost,
                step_run_id=event.aggregate_id,
            )
            run.complete_step(done)
            advance(run, orchestration, at + 1)
        elif isinstance(p, RunFailed) and p.retryable and p.attempt < MAX_ATTEMPTS:
            again = _again(run, step, visit, current, event)
            run.retry_step(_retried(step_id, event, p.error, turns, cost), again)
        elif isinstance(p, RunFailed):
            run.fail(f"step {step_id} failed: {p.error}", total_turns, total_cost)
        else:
            run.fail(f"step {step_id} was stopped by the {p.cap.cap} budget cap", total_turns, total_cost)
    except DomainError as exc:
        log.info("ignored %s (seq %d) for orchestration run %s: %s", event.type, event.seq, run.run_id, exc)


def _again(
    run: OrchestrationRun,
    step: AgentStep,
    visit: int,
    current: OrchestrationRunStepDispatched,
    event: Event[RunFailed],
) -> OrchestrationRunStepDispatched:
    """The next attempt after a retryable failure, with its error. An attempt whose lease
    expired left nothing: the next one names it (`previous_run_id`) and starts where it did,
    with the error of the attempt before it, as a task's subtask does."""
    p = event.payload
    if isinstance(p, RunLeaseExpired):
        error = current.previous_error or p.error
        return _dispatch(run, step, visit, p.attempt + 1, error=error, previous_run_id=event.aggregate_id)
    return _dispatch(run, step, visit, p.attempt + 1, error=p.error)


def _retried(step_id: str, event: Event[Any], reason: str, turns: int, cost: float) -> OrchestrationRunStepRetried:
    return OrchestrationRunStepRetried(
        step_id=step_id,
        step_run_id=event.aggregate_id,
        attempt=event.payload.attempt,
        reason=reason,
        turns=turns,
        cost_usd=cost,
    )


def _spent(event: Event[Any], store: EventStore) -> tuple[int, float]:
    """The Run's turns (its model calls) and what its usage costs, priced as the ledger prices it."""
    p = event.payload
    found = store.load(UUID(event.aggregate_id))
    turns = found.model_calls if isinstance(found, Run) else 0
    return turns, _prices().price(p.model, p.usage).usd
