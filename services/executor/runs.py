"""Dispatched subtasks become Runs of the agent (`task.subtask_dispatched`).

A Run's id derives from (task, subtask, attempt), so a redelivered dispatch finds the Run it
already recorded and calls no model again: the effect, and its cost, happen once. A Run found
unfinished belongs to an executor that stopped mid-run: it is failed as retryable, and the
planner's self-heal dispatches the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.shapes import Files, ReviewNote, RunOutput
from contracts.payloads.task import TaskSubtaskDispatched
from libs.agent.checks import check
from libs.agent.loop import AgentSpec, Outcome, estimated_usage, first_prompt_chars, run_agent
from libs.agent.prompts import first_message, system_prompt
from libs.agent.repository import Repository, printable
from libs.config import Settings
from libs.domain.run import STARTED, Run
from libs.eventstore.blobs import carry, contents, digests_in, stored
from libs.observability.logs import redact
from libs.readmodels.task_log import CHECKS_FAILED, first_line
from services.executor.asking import TaskStopped
from services.executor.deps import Deps
from services.executor.purges import PURGED, cancelling
from services.executor.recorder import RunRecorder, RunTakenOver

log = logging.getLogger(__name__)

TASK_CANCELLED = "stopped: its task was cancelled"

Dispatch = Event[TaskSubtaskDispatched]


async def on_dispatched(envelope: EventEnvelope, deps: Deps) -> list[Any]:
    """A dispatched subtask's Run (`task.subtask_dispatched`); saved by the consumer with the
    event's tracking row the moment it returns."""
    if deps.purges.is_stopped(envelope.aggregate_id):
        return []  # dispatched before its workspace was purged: no agent starts for it
    event: Dispatch = typed(envelope)
    p = event.payload
    run = Run.start(
        event.workspace_id,
        event.aggregate_id,
        p.subtask_id,
        p.agent_type,
        p.attempt,
        p.config.get("provider", "anthropic"),
        p.config.get("model", ""),
        first_line(p.previous_error) if p.previous_error else None,
    )
    try:
        # Saved before any model call, so a run whose executor stops is found unfinished and
        # retried; if this save fails otherwise, nothing was spent and the message comes back.
        # No look-up first: the run's first event is its claim, and a second claim conflicts.
        await asyncio.to_thread(deps.store.save, [run])
    except IntegrityError:
        return await _recorded(run.id, event, deps)
    return [await execute(run, event, deps)]


async def _recorded(run_id: Any, event: Dispatch, deps: Deps) -> list[Any]:
    """What to do with a dispatch whose Run is on record already (a redelivery)."""
    found = await asyncio.to_thread(deps.store.load, run_id)
    if not isinstance(found, Run):
        # Its start conflicted, yet there is no Run: the message comes back, and the log says so.
        raise RuntimeError(f"run {run_id}: its start conflicted with a record that cannot be loaded")
    if found.status != STARTED:
        return []  # recorded already
    # Started and never finished: its executor stopped mid-run. Self-heal takes it from here.
    # The calls it made before it last waited (for its next call, a person, a test
    # collection) are on record: they are charged, and so is the call it had started and not
    # recorded, at its estimate.
    found.interrupt(None if found.model_calls else await _first_call(found, event.payload, deps))
    return [found]


async def _first_call(run: Run, p: TaskSubtaskDispatched, deps: Deps) -> dict[str, int] | None:
    """The estimate of the run's first model call, made again from its dispatch as the run made
    it before that call; None when the run cannot have got that far (its agent cannot be set up
    from this dispatch)."""
    try:
        spec, _ = agent_spec(run, p, deps.settings, await _loaded(run, p, deps))
    except Exception:
        log.warning("run %s: its first model call cannot be estimated from its dispatch", run.id, exc_info=True)
        return None
    return estimated_usage(first_prompt_chars(spec), spec.max_tokens)


async def execute(run: Run, event: Dispatch, deps: Deps) -> Run:
    """Runs the agent for `run`, whose start is on record, to its end (not saved here)."""
    p = event.payload
    recorder = RunRecorder(run, event.aggregate_id, deps, caused_at=event.seq)
    started = time.perf_counter()
    # Its own asyncio task, so that a purge can stop the agent wherever it waits (a model call,
    # a person, its checks) without cancelling the consumer that handles the dispatch.
    agent = asyncio.create_task(_attempt(recorder, p, deps, started), name=f"run {run.id}")
    try:
        with deps.purges.watching(event.aggregate_id, agent):
            await agent
    except asyncio.CancelledError:
        if cancelling():
            # The executor itself stops: the agent goes with it, and the redelivered dispatch
            # finds the run interrupted.
            agent.cancel()
            raise
        await _stopped(recorder, p, deps, started, PURGED)  # a purge cancelled the agent
    except TaskStopped:
        await _stopped(recorder, p, deps, started, TASK_CANCELLED)
    except RunTakenOver:
        # Its record is another executor's now: this run's end is not saved (`flush` raises the
        # conflict, and the redelivered dispatch finds the run recorded).
        pass
    except Exception:
        # Whatever went wrong, the run ends as a recorded failure rather than sinking the
        # batch, and with it the other runs' finished, paid-for provider calls.
        log.exception("run %s failed unexpectedly", run.id)
        if run.status == STARTED:
            # The model calls it made were paid for: charged as recorded.
            duration = recorder.working_ms(started)
            run.fail("the agent failed unexpectedly", run.usage, duration, run.model_calls + run.tool_calls)
    await recorder.flush()
    return run


async def _stopped(recorder: RunRecorder, p: TaskSubtaskDispatched, deps: Deps, started: float, reason: str) -> None:
    """The run of a task a purge stopped ends for good, charged for what it spent: its recorded
    calls, and at its estimate the model call it had under way, which may have been paid."""
    run = recorder.run
    if run.status != STARTED:
        return
    turn = recorder.calling
    if turn is None:
        in_flight = None
    elif turn == 1:
        in_flight = await _first_call(run, p, deps)
    else:
        in_flight = run.in_flight()
    run.cancel(reason, recorder.working_ms(started), in_flight)


async def _loaded(run: Run, p: TaskSubtaskDispatched, deps: Deps) -> dict[str, str]:
    """The contents of the files a dispatch names (its snapshot, and the previous attempt's
    changes), by digest: one query, or none when this process loaded them already (the test
    subtask's snapshot is mostly the codegen subtask's)."""
    previous = _refs(p.previous_output.files) if p.previous_output is not None else None
    wanted = digests_in(_refs(p.files), previous)
    return await asyncio.to_thread(deps.store.blobs.load, run.workspace_id, wanted)


def agent_spec(
    run: Run, p: TaskSubtaskDispatched, settings: Settings, loaded: dict[str, str]
) -> tuple[AgentSpec, Repository]:
    """The agent a dispatch (`p`, its payload) runs, and the repository it starts from (the
    files it names, from `loaded`: digest -> content)."""
    repo = Repository(contents(_refs(p.files), loaded))
    _carry_over(repo, p.previous_output, loaded)
    earlier = msgspec.to_builtins(p.earlier)  # as the prompt reads them: the wire's camelCase keys
    spec = AgentSpec(
        agent_type=run.agent_type,
        provider=run.provider,
        model=run.model,
        system=system_prompt(run.agent_type),
        first_message=first_message(p.description, repo.current(), earlier, p.previous_error, run.attempt),
        max_tokens=p.config.get("maxTokens", 4096),
        temperature=p.config.get("temperature", 0.0),
        max_turns=settings.agent_max_turns,
    )
    return spec, repo


async def _attempt(recorder: RunRecorder, p: TaskSubtaskDispatched, deps: Deps, started: float) -> None:
    run, settings = recorder.run, deps.settings
    spec, repo = agent_spec(run, p, settings, await _loaded(run, p, deps))
    async with recorder.slot:
        outcome = await run_agent(deps.providers, spec, repo, recorder)
    problems = (
        []
        if outcome.error
        else await check(repo, outcome.summary, settings.self_heal_collect_tests, recorder.save_in_background)
    )
    # What the checks report can quote the agent's code (and whatever it printed): no secrets.
    problems = [printable(redact(p)) for p in problems]
    # The changed files are stored once, as blobs saved with the run's end; its event names them.
    refs, blobs = stored(run.workspace_id, outcome.changes.files)
    carry(run, blobs)
    output = _output(outcome, msgspec.convert(refs, Files))
    usage = msgspec.structs.asdict(outcome.usage)
    duration = recorder.working_ms(started)
    subrequests = outcome.model_calls + outcome.tool_calls
    changed = bool(outcome.changes.files or outcome.changes.deleted)
    if outcome.budget_stop is not None:
        on_exceeded = recorder.budget.on_exceeded if recorder.budget else "pause"
        run.stop_for_budget(outcome.budget_stop, on_exceeded, usage, duration, subrequests, output if changed else None)
    elif outcome.error:
        run.fail(outcome.error, usage, duration, subrequests, outcome.retryable, output if changed else None)
    elif problems:
        error = f"{CHECKS_FAILED}\n" + "\n".join(problems)
        run.fail(error, usage, duration, subrequests, retryable=True, output=output)
    else:
        run.succeed(output, usage, duration, subrequests)


def _carry_over(repo: Repository, previous: RunOutput | None, loaded: dict[str, str]) -> None:
    """A self-heal attempt starts from the failed attempt's changes, as if it had made them:
    deletions first (a deleted file may have become a folder), then the writes."""
    if previous is None:
        return
    for path in previous.deleted_files:
        if repo.read(path) is not None:
            repo.delete(path)
    for path, content in contents(_refs(previous.files), loaded).items():
        repo.write(path, content)


def _refs(files: Files) -> dict[str, Any]:
    """A payload's files as the blob helpers read them: path -> `{"digest", "size"}` (or an
    old event's inline content)."""
    refs: dict[str, Any] = msgspec.to_builtins(files)
    return refs


def _output(outcome: Outcome, files: Files) -> RunOutput:
    """The run's output as its event names it: `files`, the changed files by digest."""
    comments = [ReviewNote(path=c.path, body=c.body, line=c.line) for c in outcome.comments]
    return RunOutput(
        files=files, summary=outcome.summary or "", deleted_files=outcome.changes.deleted, comments=comments
    )
