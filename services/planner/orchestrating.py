"""Runs of spec 004's definitions, step by step (docs/orchestrations.md §2).

An agent step is a Run of the executor: the planner appends `orchestration_run.step_dispatched`
(a subtask dispatch's shape) and goes on when that Run ends (`run.succeeded`, `run.failed`: their
`task_id` is the orchestration run's id). A condition is decided at once; a human step pauses the
run. What a run follows is the definition it stored at its start, read back by digest.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, StartOrchestrationCommand
from contracts.events import Event
from contracts.files import FileRef
from contracts.orchestrations import AgentStep, ConditionStep, HumanField, HumanStep, Orchestration, Step
from contracts.payloads.input_gate import InputGateAnswered
from contracts.payloads.orchestration_run import (
    OrchestrationRunPaused,
    OrchestrationRunResumed,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepRetried,
)
from contracts.payloads.run import RunBudgetStopped, RunFailed, RunLeaseExpired, RunReleased, RunSucceeded
from contracts.payloads.shapes import Changes, Files, RunOutput
from contracts.tasks import check_paths
from libs.agent.loop import estimated_usage
from libs.agent.prompts import system_prompt
from libs.domain.errors import DomainError
from libs.domain.orchestration_run import PAUSED, RUNNING, OrchestrationRun
from libs.domain.run import Run, run_id_for
from libs.eventstore.blobs import Blob, FileRefs, carried, carry, stored
from libs.eventstore.store import EventStore
from libs.orchestrations.checks import PLACEHOLDER, check
from libs.orchestrations.definitions import digest_of, files_key
from libs.orchestrations.stored import definition_of as stored_definition
from libs.orchestrations.values import resolved, stored_value
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
    files = _files(orchestration, command)
    if isinstance(files, CommandError):
        return CommandReply(error=files)
    canonical = msgspec.json.encode(orchestration, order="sorted").decode()
    refs, blobs = stored(command.workspace_id, {"definition": canonical})
    definition = msgspec.convert(refs["definition"], FileRef)
    state_files, file_blobs = files
    blobs += file_blobs
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
            state_files,
        )
        advance(run, orchestration, 0, store)
        try:
            seq = store.save([run], blobs=blobs)
        except IntegrityError:
            continue
        return CommandReply(seq=seq, run_id=run_id, status=run.status)
    return CommandReply(error=CommandError(503, "service_unavailable", "too many runs start at once; try again"))


def _files(
    orchestration: Orchestration, command: StartOrchestrationCommand
) -> tuple[dict[str, FileRefs], list[Blob]] | CommandError:
    """The run's `files` by digest under the definition's files key, and their blobs to store with
    its start; a refusal when the definition has no files key or a path is not a repository's."""
    if command.files is None:
        return {}, []
    key = files_key(orchestration)
    if key is None:
        message = f"orchestration {orchestration.id} has no state key of type files: it takes no files"
        return CommandError(400, "invalid_request", message)
    try:
        check_paths(command.files)
    except ValueError as exc:
        return CommandError(400, "invalid_request", str(exc))
    refs, blobs = stored(command.workspace_id, command.files)
    return {key: refs}, blobs


def definition_of(run: OrchestrationRun, store: EventStore) -> Orchestration:
    return stored_definition(store, run.workspace_id, run.definition.digest)


def state_of(run: OrchestrationRun, store: EventStore) -> dict[str, Any]:
    """The run's state as its templates and conditions read it: a long answer, which the state
    holds by digest, as its text (files keys stay by digest)."""
    return resolved(store.blobs, run.workspace_id, run.shared_state, carried([run]))


def advance(run: OrchestrationRun, orchestration: Orchestration, at: int, store: EventStore) -> None:
    """From step `at` on: conditions are decided at once, up to the next agent step (dispatched)
    or human step (the run pauses), or the end (the run completes)."""
    steps = orchestration.steps
    index = {s.id: i for i, s in enumerate(steps)}
    state = state_of(run, store)  # no step entered below writes to it
    while at < len(steps):
        step = steps[at]
        if isinstance(step, ConditionStep) and run.visits.get(step.id, 0) >= step.max_visits:
            run.fail(f"step {step.id} was entered more than {step.max_visits} times")
            return
        if isinstance(step, AgentStep) and (over := _over_limit(run, step, state)):
            run.fail(over)  # the step is not started
            return
        visit = run.start_step(step.id, step.name, _kind(step))
        if isinstance(step, AgentStep):
            run.dispatch_step(_dispatch(run, step, state, visit, 1))
            return
        if isinstance(step, HumanStep):
            run.pause(_paused(step, state, visit))
            return
        taken = state.get(step.key) == step.equals
        run.complete_step(OrchestrationRunStepCompleted(step_id=step.id, next_step=step.goto if taken else None))
        at = index[step.goto] if taken else at + 1
    run.complete(f"{orchestration.name} complete.")


def _over_limit(run: OrchestrationRun, step: AgentStep, state: dict[str, Any], spent_now: float = 0.0) -> str | None:
    """Spec 004's refusal when starting the step would cross the run's `max_cost_usd`: what the
    run has spent (its steps' costs, and `spent_now` by the step under way) plus what the
    step's first model call is estimated to cost, as the executor estimates it before a call.
    `state`: the run's (`state_of`)."""
    if run.max_cost_usd is None:
        return None
    chars = len(system_prompt(AGENT_TYPE, step.tools)) + len(render(step.prompt, state))
    files = state.get(step.files) if step.files and step.tools else None
    if isinstance(files, dict):  # the repository its first request carries: path -> {digest, size}
        chars += sum(ref.get("size", 0) for ref in files.values() if isinstance(ref, dict))
    estimate = _prices().price(step.model, estimated_usage(chars, MAX_TOKENS)).usd
    projected = run.cost_usd + spent_now + estimate
    if projected <= run.max_cost_usd:
        return None
    # Rounded up to the cent, so that what is shown is over the limit as it is shown.
    return f"Cost limit exceeded: ${math.ceil(projected * 100) / 100:.2f} > max ${_usd(run.max_cost_usd)}"


def _usd(amount: float) -> str:
    """Cents as spec 004 shows them ($0.50), or as many decimals as a finer limit has."""
    return f"{amount:.2f}" if round(amount, 2) == amount else f"{amount:.6f}".rstrip("0")


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
    state: dict[str, Any],
    visit: int,
    attempt: int,
    *,
    handover: int = 0,
    error: str | None = None,
    previous: RunOutput | None = None,
    previous_run_id: str | None = None,
) -> OrchestrationRunStepDispatched:
    subtask_id = f"{step.id}{VISIT}{visit}"
    config = {"model": step.model, "provider": str(step.provider), "maxTokens": MAX_TOKENS, "maxTurns": step.max_turns}
    # The step's files key, by digest, for its tools to work on; a step without tools has none.
    files = state.get(step.files) if step.tools and step.files is not None else None
    return OrchestrationRunStepDispatched(
        subtask_id=subtask_id,
        agent_type=AGENT_TYPE,
        description=render(step.prompt, state),
        files=msgspec.convert(files or {}, Files),
        config=config,
        attempt=attempt,
        previous_error=error,
        # A retry starts from the failed attempt's changes, as a subtask's self-heal does.
        previous_output=previous,
        run_id=str(run_id_for(str(run.id), subtask_id, attempt, handover)),
        handover=handover,
        tools=list(step.tools),
        previous_run_id=previous_run_id,
    )


def _paused(step: HumanStep, state: dict[str, Any], visit: int) -> OrchestrationRunPaused:
    fields = [_field(f) for f in step.fields]
    context = render(step.agent_context, state) if step.agent_context else None
    gate = f"{step.id}{VISIT}{visit}"
    return OrchestrationRunPaused(step_id=step.id, prompt=step.prompt, fields=fields, agent_context=context, gate=gate)


def _field(field: HumanField) -> dict[str, Any]:
    """A field as spec 004 shows it: a select's options joined by commas, no options otherwise."""
    shown = {k: v for k, v in msgspec.to_builtins(field).items() if k != "options"}
    return {**shown, "options": ",".join(field.options)} if field.type == "select" else shown


# --- a person's answer at the run's gate ----------------------------------------------------------


def on_answer(run: OrchestrationRun, event: Event[Any], store: EventStore) -> None:
    """Review recorded the response to the gate the run is paused at: each field's value goes to
    its state key, and the run goes on after the human step. An answer to a pause the run is no
    longer at (redelivered, or the run failed meanwhile) changes nothing."""
    p: InputGateAnswered = event.payload
    if run.status != PAUSED or run.paused is None or run.paused.gate != p.gate:
        log.info("ignored %s (seq %d) for orchestration run %s", event.type, event.seq, run.run_id)
        return
    orchestration = definition_of(run, store)
    at = next(i for i, s in enumerate(orchestration.steps) if s.id == p.step_id)
    run.resume(OrchestrationRunResumed(step_id=p.step_id, gate=p.gate, values=p.response))
    advance(run, orchestration, at + 1, store)


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
            again = _dispatch(
                run,
                step,
                state_of(run, store),
                visit,
                c.attempt,
                handover=c.handover + 1,
                error=c.previous_error,
                previous=c.previous_output,
                previous_run_id=c.previous_run_id,
            )
            run.retry_step(_retried(step_id, event, p.reason or "given back", turns, cost), again)
        elif isinstance(p, RunSucceeded):
            changes = _changes(step, p.output)
            # A long answer is a blob, stored with this event (the run's save takes it along).
            value, value_ref, blobs = stored_value(run.workspace_id, p.output.summary)
            done = OrchestrationRunStepCompleted(
                step_id=step_id,
                output=step.output,
                value=value,
                value_ref=value_ref,
                turns=total_turns,
                cost_usd=total_cost,
                step_run_id=event.aggregate_id,
                files_key=step.files if changes is not None else None,
                changes=changes,
            )
            run.complete_step(done)
            carry(run, blobs)
            advance(run, orchestration, at + 1, store)
        elif isinstance(p, RunFailed) and p.retryable and p.attempt < MAX_ATTEMPTS:
            state = state_of(run, store)
            if over := _over_limit(run, step, state, spent_now=cost):
                run.fail(over, total_turns, total_cost)  # another attempt would cross the run's limit
            else:
                again = _again(run, step, state, visit, current, event)
                run.retry_step(_retried(step_id, event, p.error, turns, cost), again)
        elif isinstance(p, RunFailed):
            run.fail(f"step {step_id} failed: {p.error}", total_turns, total_cost)
        else:
            run.fail(f"step {step_id} was stopped by the {p.cap.cap} budget cap", total_turns, total_cost)
    except DomainError as exc:
        log.info("ignored %s (seq %d) for orchestration run %s: %s", event.type, event.seq, run.run_id, exc)


def _changes(step: AgentStep, output: RunOutput) -> Changes | None:
    """What the step changed in its files key, by digest; None when it changed no file."""
    if step.files is None or not (output.files or output.deleted_files):
        return None
    return Changes(files=output.files, deleted=output.deleted_files)


def _again(
    run: OrchestrationRun,
    step: AgentStep,
    state: dict[str, Any],
    visit: int,
    current: OrchestrationRunStepDispatched,
    event: Event[RunFailed],
) -> OrchestrationRunStepDispatched:
    """The next attempt after a retryable failure, with its error. An attempt whose lease
    expired left nothing: the next one names it (`previous_run_id`) and starts where it did,
    with the error of the attempt before it, as a task's subtask does."""
    p = event.payload
    if isinstance(p, RunLeaseExpired):
        error, previous = current.previous_error or p.error, current.previous_output
        return _dispatch(
            run, step, state, visit, p.attempt + 1, error=error, previous=previous, previous_run_id=event.aggregate_id
        )
    # A retry starts from the failed attempt's changes, as a subtask's self-heal does.
    return _dispatch(run, step, state, visit, p.attempt + 1, error=p.error, previous=p.output)


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
