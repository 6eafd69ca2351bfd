"""Dispatched subtasks become Runs of the agent (`task.subtask_dispatched`, and an orchestration's
agent steps, `orchestration_run.step_dispatched`, which has the same shape).

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
from contracts.payloads.orchestration_run import OrchestrationRunStepDispatched
from contracts.payloads.shapes import Files, ReviewNote, RunOutput
from contracts.payloads.task import TaskSubtaskDispatched
from contracts.tasks import Runner
from libs.agent.checks import check
from libs.agent.loop import AgentSpec, Model, Outcome, estimated_usage, first_prompt_chars, run_agent
from libs.agent.prompts import first_message, system_prompt
from libs.agent.repository import Repository, printable
from libs.agent.starting import starting_repository, wanted
from libs.agent.tools import REPOSITORY_TOOLS, offered
from libs.config import Settings
from libs.domain.run import STARTED, Claim, Run, claim_token_hash, new_claim_token
from libs.eventstore.blobs import carry, stored
from libs.leases import heartbeats
from libs.leases.clock import now_ms, until
from libs.leases.fence import lease_end
from libs.observability.logs import redact
from libs.readmodels.task_log import CHECKS_FAILED, first_line
from services.executor import containers
from services.executor.asking import TaskStopped
from services.executor.deps import Deps
from services.executor.purges import TASK_CANCELLED, cancelling
from services.executor.recorder import RunRecorder, RunTakenOver

log = logging.getLogger(__name__)

FLY = Runner.FLY.value
EXTERNAL = "external"  # `config.agentRuntime`: only agent sessions run the task's subtasks

Dispatch = Event[TaskSubtaskDispatched]


async def on_dispatched(envelope: EventEnvelope, deps: Deps) -> list[Any]:
    """A dispatched subtask's Run (`task.subtask_dispatched`); saved by the consumer with the
    event's tracking row the moment it returns."""
    if deps.purges.is_stopped(envelope.aggregate_id):
        return []  # dispatched before its workspace was purged: no agent starts for it
    event: Dispatch = typed(envelope)
    p = event.payload
    if p.config.get("agentRuntime") == EXTERNAL:
        return []  # its task asked for agent sessions: they claim it (`claim-next`), never the executor
    if p.config.get("runner") == FLY:
        return await containers.on_dispatched(event, deps)  # a container of its own claims it
    loaded = await _loaded(event.workspace_id, p, deps)
    soul = await asyncio.to_thread(deps.souls.section, event.workspace_id, p.agent_type)
    # Read before the run is saved: a read that fails sends the dispatch back, and no run is left started.
    model = deps.providers.for_workspace(await deps.keys.of(event.workspace_id))
    # The agent is set up before its claim: the claim carries its first call's estimate, and
    # the run then starts from this very setup (its prompt is the costly part to build).
    prepared = _prepared(p, deps.settings, loaded, soul)
    token = new_claim_token()
    claim = Claim(
        session_id=None,  # the run is its own session
        lease_until=until(deps.settings.lease_ttl_s),
        lease_ttl_s=deps.settings.lease_ttl_s,
        token_hash=claim_token_hash(token),
        dispatch_seq=event.seq,
    )
    run = Run.start(
        event.workspace_id,
        event.aggregate_id,
        p.subtask_id,
        p.agent_type,
        p.attempt,
        provider_of(p),
        model_of(p),
        first_line(p.previous_error) if p.previous_error else None,
        claim=claim,
        handover=p.handover,
        previous_run_id=p.previous_run_id,
        first_call_estimate=_estimate(prepared[0]) if prepared is not None else None,
    )
    try:
        # Saved before any model call, so a run whose executor stops is found unfinished and
        # retried; if this save fails otherwise, nothing was spent and the message comes back.
        # No look-up first: the run's first event is its claim, and a second claim conflicts.
        await asyncio.to_thread(deps.store.save, [run])
    except IntegrityError:
        return await _recorded(run.id, event, deps)
    return [await execute(run, token, event, deps, model, prepared)]


def provider_of(p: TaskSubtaskDispatched) -> str:
    return str(p.config.get("provider", "anthropic"))


def model_of(p: TaskSubtaskDispatched) -> str:
    return str(p.config.get("model", ""))


async def _recorded(run_id: Any, event: Dispatch, deps: Deps) -> list[Any]:
    """What to do with a dispatch whose Run is on record already (a redelivery, or a claim by an
    agent session that came first)."""
    found = await asyncio.to_thread(deps.store.load, run_id)
    if not isinstance(found, Run):
        # Its start conflicted, yet there is no Run: the message comes back, and the log says so.
        raise RuntimeError(f"run {run_id}: its start conflicted with a record that cannot be loaded")
    if found.status != STARTED or not found.internal:
        return []  # recorded already, or an agent session holds it under its own lease
    beats = await asyncio.to_thread(heartbeats.latest, deps.store, [found.id])
    end = lease_end(found, beats.get(found.id, (None, None))[0])
    if end is not None and end > now_ms():
        # Still heartbeated: the executor running it is alive (this delivery came back because
        # its acknowledgements did not get through). If it dies, the sweeper ends the run.
        return []
    # Started and never finished: its executor stopped mid-run. Self-heal takes it from here.
    # The calls it made before it last waited (for its next call, a person, a test
    # collection) are on record: they are charged, and so is the call it had started and not
    # recorded, at its estimate. (Its lease would have expired too: whichever of the two
    # records the run's end first wins, and the other's append conflicts.)
    first_call = None
    if found.model_calls == 0:
        first_call = found.first_call_estimate
        if first_call is None:  # a run claimed before its start carried the estimate
            loaded = await _loaded(found.workspace_id, event.payload, deps)
            prepared = _prepared(event.payload, deps.settings, loaded, "")
            first_call = _estimate(prepared[0]) if prepared is not None else None
    found.interrupt(first_call)
    return [found]


def _prepared(
    p: TaskSubtaskDispatched, settings: Settings, loaded: dict[str, str], soul: str
) -> tuple[AgentSpec, Repository] | None:
    """The agent the run will be and the repository it starts from; None when the agent cannot
    be set up from this dispatch (the run then fails as it starts, before any call)."""
    try:
        return agent_spec(p, settings, loaded, soul)
    except Exception:
        log.warning("subtask %s: its agent cannot be set up from its dispatch", p.subtask_id, exc_info=True)
        return None


def _estimate(spec: AgentSpec) -> dict[str, int]:
    """What the run's first model call is estimated to use."""
    return estimated_usage(first_prompt_chars(spec), spec.max_tokens)


async def execute(
    run: Run,
    token: str,
    event: Dispatch,
    deps: Deps,
    model: Model,
    prepared: tuple[AgentSpec, Repository] | None = None,
) -> Run:
    """Runs the agent for `run`, whose start (its claim, `token`) is on record, to its end (not
    saved here), heartbeating its lease meanwhile; `model`: its workspace's model calls."""
    p = event.payload
    recorder = RunRecorder(run, event.aggregate_id, deps, caused_at=event.seq)
    started = time.perf_counter()
    # Its own asyncio task, so that a purge can stop the agent wherever it waits (a model call,
    # a person, its checks) without cancelling the consumer that handles the dispatch.
    agent = asyncio.create_task(_attempt(recorder, p, deps, model, started, prepared), name=f"run {run.id}")
    heartbeat = asyncio.create_task(_heartbeat(recorder, claim_token_hash(token), deps), name=f"lease {run.id}")
    try:
        with deps.purges.watching(event.aggregate_id, agent):
            await agent
    except asyncio.CancelledError:
        if cancelling():
            # The executor itself stops: the agent goes with it, and the redelivered dispatch
            # finds the run interrupted.
            agent.cancel()
            raise
        # A purge or a stop cancelled the agent.
        await _stopped(recorder, p, deps, started, deps.purges.reason(event.aggregate_id))
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
    finally:
        heartbeat.cancel()
    await recorder.flush()
    return run


async def _heartbeat(recorder: RunRecorder, token_hash: str, deps: Deps) -> None:
    """Keeps the run's lease for as long as its agent works: a third of the lease's length
    apart, so two heartbeats can be lost before it passes. Refused (the lease passed: this
    process stalled, and the sweeper may have ended the run), the run counts as taken over and
    stops before its next paid call."""
    ttl = deps.settings.lease_ttl_s
    run = recorder.run
    while True:
        await asyncio.sleep(ttl / 3)
        try:
            kept = await asyncio.to_thread(
                heartbeats.extend, deps.store, run.id, token_hash, run.lease_until or 0, ttl * 1000
            )
        except Exception:
            log.warning("run %s: its heartbeat failed; trying again", run.id, exc_info=True)
            continue
        if kept is None:
            log.warning("run %s: its lease passed; stopping it", run.id)
            recorder.taken_over = True
            return


async def _stopped(recorder: RunRecorder, p: TaskSubtaskDispatched, deps: Deps, started: float, reason: str) -> None:
    """The run of a task a purge or a stop ended ends for good, charged for what it spent: its
    recorded calls, and at its estimate the model call it had under way, which may have been paid."""
    run = recorder.run
    if run.status != STARTED:
        return
    turn = recorder.calling
    if turn is None:
        in_flight = None
    elif turn == 1:
        in_flight = run.first_call_estimate
    else:
        in_flight = run.in_flight()
    run.cancel(reason, recorder.working_ms(started), in_flight)


async def _loaded(workspace_id: str, p: TaskSubtaskDispatched, deps: Deps) -> dict[str, str]:
    """The contents of the files a dispatch names (its snapshot, and the previous attempt's
    changes), by digest: one query, or none when this process loaded them already (the test
    subtask's snapshot is mostly the codegen subtask's)."""
    return await asyncio.to_thread(deps.store.blobs.load, workspace_id, wanted(p))


def agent_spec(
    p: TaskSubtaskDispatched, settings: Settings, loaded: dict[str, str], soul: str = ""
) -> tuple[AgentSpec, Repository]:
    """The agent a dispatch (`p`, its payload) runs, and the repository it starts from (the
    files it names, from `loaded`: digest -> content); `soul`, what the workspace's soul for the
    agent type adds to its system prompt."""
    repo = starting_repository(p, loaded)
    earlier = msgspec.to_builtins(p.earlier)  # as the prompt reads them: the wire's camelCase keys
    # An orchestration step names its tools; its agent is told of those only, and one with no
    # repository tool is shown no files.
    allowed = tuple(p.tools) if isinstance(p, OrchestrationRunStepDispatched) and p.tools is not None else None
    tools = [t.name for t in offered(p.agent_type, allowed)]
    files = repo.current() if REPOSITORY_TOOLS.intersection(tools) else None
    spec = AgentSpec(
        agent_type=p.agent_type,
        provider=provider_of(p),
        model=model_of(p),
        system=system_prompt(p.agent_type, tools) + (f"\n\n{soul}" if soul else ""),
        first_message=first_message(p.description, files, earlier, p.previous_error, p.attempt),
        max_tokens=p.config.get("maxTokens", 4096),
        temperature=p.config.get("temperature", 0.0),
        # An orchestration's agent step says its own (`max_turns`); a task's subtasks, the setting's.
        max_turns=p.config.get("maxTurns", settings.agent_max_turns),
        tools=allowed,
    )
    return spec, repo


async def _attempt(
    recorder: RunRecorder,
    p: TaskSubtaskDispatched,
    deps: Deps,
    model: Model,
    started: float,
    prepared: tuple[AgentSpec, Repository] | None,
) -> None:
    run, settings = recorder.run, deps.settings
    # Not prepared: its setup failed before the claim; tried again here, it fails the run.
    spec, repo = prepared or agent_spec(p, settings, await _loaded(run.workspace_id, p, deps))
    async with recorder.slot:
        outcome = await run_agent(model, spec, repo, recorder)
    problems = (
        []
        if outcome.error
        else await check(repo, outcome.summary, settings.self_heal_collect_tests, recorder.save_in_background)
    )
    # What the checks report can quote the agent's code (and whatever it printed): no secrets.
    problems = [printable(redact(p)) for p in problems]
    # The changed files are stored once, as blobs saved with the run's end; its event names them.
    changed_refs, blobs = stored(run.workspace_id, outcome.changes.files)
    carry(run, blobs)
    output = _output(outcome, msgspec.convert(changed_refs, Files))
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


def _output(outcome: Outcome, files: Files) -> RunOutput:
    """The run's output as its event names it: `files`, the changed files by digest."""
    comments = [ReviewNote(path=c.path, body=c.body, line=c.line) for c in outcome.comments]
    return RunOutput(
        files=files, summary=outcome.summary or "", deleted_files=outcome.changes.deleted, comments=comments
    )
