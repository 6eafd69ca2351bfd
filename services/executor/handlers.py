"""Executor handlers: dispatched subtasks become Runs of the agent; approved tasks get their
pull request.

A Run's id derives from (task, subtask, attempt), so a redelivered dispatch finds the Run it
already recorded and calls no model again: the effect, and its cost, happen once. A Run found
unfinished belongs to an executor that stopped mid-run: it is failed as retryable, and the
planner's self-heal dispatches the next attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError
from githubkit import GitHub
from nats.aio.client import Client as NatsClient

from contracts.commands import AskQuestionCommand
from contracts.events import EventEnvelope
from contracts.logs import LogEntry, worker_id
from contracts.questions import MAX_QUESTIONS, QuestionItem
from libs.agent.checks import check
from libs.agent.loop import AgentSpec, ModelCall, Outcome, estimated_usage, first_prompt_chars, run_agent
from libs.agent.prompts import first_message, system_prompt
from libs.agent.repository import Repository, printable
from libs.agent.tools import ToolResult
from libs.bus.consumer import TryLater
from libs.bus.logs import LogPublisher
from libs.config import Settings
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.domain.run import STARTED, Run
from libs.domain.task import APPROVED, CANCELLED, Task
from libs.eventstore.store import EventStore
from libs.llm.conversation import Usage
from libs.llm.providers import Providers
from libs.observability.logs import redact
from libs.pricing import PriceTable
from services.executor.budgets import Budget, load_budget
from services.executor.pulls import BranchLocks, open_pull_request
from services.executor.purges import PURGED, Purges
from services.executor.questions import Answers, AskFailed, answer_text, ask, recorded_expiry
from services.executor.runslots import RunSlot, RunSlots

log = logging.getLogger(__name__)


@dataclass
class Deps:
    settings: Settings
    store: EventStore
    providers: Providers
    slots: RunSlots  # at most `max_concurrent_runs` agent runs at once; sizes what the consumer takes
    logs: LogPublisher  # live task logs; `emit` never blocks or raises
    github: GitHub[Any] | None  # None without GITHUB_TOKEN
    nc: NatsClient  # commands to other owners (an agent's question goes to review)
    answers: Answers  # the answers runs of this process wait on
    prices: PriceTable  # to estimate a model call against the budget caps
    # One publisher per branch across replicas (a PostgreSQL advisory lock with a pool).
    locks: BranchLocks = field(default_factory=BranchLocks)
    purges: Purges = field(default_factory=Purges)  # stops the runs of tasks a purge stopped


async def on_approved(event: EventEnvelope, deps: Deps) -> list[Any]:
    """An approved task's pull request (`task.approved`); saved by the consumer with the event's
    tracking row the moment it returns."""
    pull_id, task_id = pull_request_id(event.aggregate_id), uuid.UUID(event.aggregate_id)
    found = await asyncio.to_thread(deps.store.load_many, [pull_id, task_id])
    task = found.get(task_id)
    if pull_id in found or (isinstance(task, Task) and task.status != APPROVED):
        # Published already, or the task moved on (cancelled by a purge, say) while an
        # approval handed back (a rate limit, GitHub away) waited: nothing to publish.
        return []
    return [await publish(event, deps)]


async def on_dispatched(event: EventEnvelope, deps: Deps) -> list[Any]:
    """A dispatched subtask's Run (`task.subtask_dispatched`); saved by the consumer with the
    event's tracking row the moment it returns."""
    if deps.purges.is_stopped(event.aggregate_id):
        return []  # dispatched before its workspace was purged: no agent starts for it
    p = event.payload
    config = p["config"]
    run = Run.start(
        event.workspace_id,
        event.aggregate_id,
        p["subtask_id"],
        p["agent_type"],
        p["attempt"],
        config.get("provider", "anthropic"),
        config.get("model", ""),
    )
    try:
        # Saved before any model call, so a run whose executor stops is found unfinished and
        # retried; if this save fails otherwise, nothing was spent and the message comes back.
        # No look-up first: the run's first event is its claim, and a second claim conflicts.
        await asyncio.to_thread(deps.store.save, [run])
    except IntegrityError:
        return await _recorded(run.id, event, deps)
    return [await execute(run, event, deps)]


async def _recorded(run_id: Any, event: EventEnvelope, deps: Deps) -> list[Any]:
    """What to do with a dispatch whose Run is on record already (a redelivery)."""
    found = (await asyncio.to_thread(deps.store.load_many, [run_id])).get(run_id)
    if not isinstance(found, Run):
        # Its start conflicted, yet there is no Run: the message comes back, and the log says so.
        raise RuntimeError(f"run {run_id}: its start conflicted with a record that cannot be loaded")
    if found.status != STARTED:
        return []  # recorded already
    # Started and never finished: its executor stopped mid-run. Self-heal takes it from here.
    # The calls it made before it last waited (for its next call, a person, a test
    # collection) are on record: they are charged, and so is the call it had started and not
    # recorded, at its estimate.
    found.interrupt(None if found.model_calls else _first_call(found, event.payload, deps.settings))
    return [found]


def _first_call(run: Run, p: dict[str, Any], settings: Settings) -> dict[str, int] | None:
    """The estimate of the run's first model call, made again from its dispatch as the run made
    it before that call; None when the run cannot have got that far (its agent cannot be set up
    from this dispatch)."""
    try:
        spec, _ = agent_spec(run, p, settings)
    except Exception:
        log.warning("run %s: its first model call cannot be estimated from its dispatch", run.id, exc_info=True)
        return None
    return estimated_usage(first_prompt_chars(spec), spec.max_tokens)


class RunRecorder:
    """The agent loop's observer: each model and tool call becomes an event on the Run and a
    live log line at once.

    A model call is paid for the moment it returns, so its record is on the store before the
    run waits for anything: the next model call (which waits for the save), a person's answer,
    a test collection (both saved in the background meanwhile). The save before a model call
    also marks that call as started, with its estimate (`run.model_call_started`; the first
    call's marker is the run's start). An executor that stops mid-run thus leaves every call it
    paid for on record, the one in flight as an estimate, and the interrupted run is charged for
    them. Between waits the run only computes (its tools work on the files in memory), so the
    records of a last turn go with the run's end in one append, after `flush`."""

    def __init__(self, run: Run, task_id: str, deps: Deps) -> None:
        self.run = run
        self.deps = deps
        self.task_id = task_id
        self.worker = worker_id(task_id, run.subtask_id)
        self.turn = 0
        self.budget: Budget | None = None
        self._unsaved: list[Any] = []  # the Run's events taken for saving, in version order
        self._saving: asyncio.Task[None] | None = None
        self.taken_over = False
        self.slot: RunSlot = deps.slots.slot()  # held while its agent works (`_attempt`)
        self.waited_s = 0.0  # for people's answers: not the run's work, nor charged as its time
        self.calling: int | None = None  # the turn of the model call under way, if one is

    def working_ms(self, started: float) -> int:
        """The run's time since `started`, less what it spent waiting for people's answers: its
        `duration_ms`, and the time its charge counts (`cpuTimeMs`)."""
        return max(0, _ms_since(started) - round(self.waited_s * 1000))

    def line(self, message: str, level: str = "log") -> None:
        log_line(
            self.deps, self.run.workspace_id, self.task_id, self.worker, f"[{self.run.agent_type}] {message}", level
        )

    def model_called(self, call: ModelCall) -> None:
        self.turn, self.calling = call.turn, None
        self.run.record_model_call(
            call.turn, call.ok, call.duration_ms, _usage(call.usage), call.stop_reason, call.tool_calls, call.error
        )
        if call.ok:
            u = call.usage
            self.line(
                f"model call {call.turn}: {u.input_tokens} in / {u.output_tokens} out tokens, "
                f"{call.tool_calls} tool call(s), {call.duration_ms} ms"
            )
        else:
            self.line(f"model call {call.turn} failed: {call.error}", "error")

    def save_in_background(self) -> None:
        """The run is about to wait: what it recorded so far goes to the store meanwhile."""
        self._unsaved.extend(self.run.collect_events())
        if self._unsaved and (self._saving is None or self._saving.done()):
            self._saving = asyncio.create_task(self._save_unsaved())

    async def _save_unsaved(self) -> None:
        while self._unsaved:
            batch = list(self._unsaved)
            try:
                await asyncio.to_thread(self.deps.store.save, batch)
            except IntegrityError:
                # Another replica recorded this run meanwhile (failed it as interrupted): it is
                # not this one's any more, and its next call would be paid and never charged.
                log.warning("run %s was recorded by another executor meanwhile; stopping it", self.run.id)
                self.taken_over = True
                return
            except Exception:
                log.warning("run %s: saving its call records failed; trying again at its end", self.run.id)
                return
            del self._unsaved[: len(batch)]

    async def flush(self) -> None:
        """Saves what is still unsaved of the calls' records; raises when the store refuses, so
        the dispatch is redelivered (and the run found interrupted) rather than saved with a
        hole in its versions."""
        if self._saving is not None:
            await self._saving
        if self._unsaved:
            await asyncio.to_thread(self.deps.store.save, self._unsaved)
            self._unsaved.clear()

    def tool_called(self, call_id: str, tool: str, result: ToolResult) -> None:
        # What a model wrote can quote a key it read: masked before it becomes an event, so the
        # feed, the tool log and the dump never hold it.
        error = None if result.ok else redact(result.content)
        target = redact(result.target) if result.target is not None else None
        self.run.record_tool_call(call_id, tool, result.ok, redact(result.title), target, result.duration_ms, error)
        self.line(result.title, "log" if result.ok else "warn")

    async def saved(self) -> None:
        """What the run recorded so far is in the store before it goes on to something that
        costs (a model call, a person's time); RunTakenOver when another executor recorded the
        run meanwhile, so it stops before paying again or asking anyone."""
        self.save_in_background()
        if self._saving is not None:
            await self._saving
        if self.taken_over:
            raise RunTakenOver(str(self.run.id))

    async def turn_done(self, finished: bool) -> None:
        pass  # progress shows in the live log; each model call's record is saved as it returns

    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> dict[str, Any] | None:
        """The cap the next call could cross, or None to go ahead: then the call is marked as
        started and saved, with what the run recorded so far, before it is made."""
        turn = self.turn + 1
        if self.budget is None or self.budget.caps:
            # Read again before every call of a capped workspace: other runs' charges land meanwhile.
            self.budget = await asyncio.to_thread(
                load_budget, self.deps.store, self.deps.prices, self.run.workspace_id, self.task_id, str(self.run.id)
            )
        if self.budget.caps or turn > 1:
            # Measured only when something needs it (a cap, a marker): it encodes the whole conversation.
            estimate = estimated_usage(prompt_chars(), max_tokens)
            stop = self._crossed(self.budget, estimate) if self.budget.caps else None
            if stop is not None:
                return stop  # no call: no marker, and the records go with the run's end
            if turn > 1:
                # The first call's marker is the run's start; a later call's rides with the
                # previous turn's records, in the save the call waits for anyway.
                self.run.start_model_call(turn, estimate)
        await self.saved()
        self.calling = turn
        return None

    def _crossed(self, budget: Budget, estimate: dict[str, int]) -> dict[str, Any] | None:
        prices, model = self.deps.prices, self.run.model
        estimate_usd = prices.price(model, estimate).usd
        spent_here = prices.price(model, self.run.usage).usd  # this run's calls, not charged yet
        stop = budget.crossed(spent_here, estimate_usd)
        if stop is not None:
            self.line(
                f"stopped before a model call: it could cost ${estimate_usd:.4f}, and the {stop['cap']} budget "
                f"(${stop['limit_usd']:.4f}) has ${stop['limit_usd'] - stop['spent_usd']:.4f} left",
                "warn",
            )
        return stop

    async def ask_human(self, call_id: str, arguments: Any) -> ToolResult:
        """Asks, then waits until a human answers or the question expires."""
        await self.saved()
        started = time.perf_counter()

        def result(content: str, ok: bool, title: str, target: str | None = None) -> ToolResult:
            return ToolResult(printable(content), ok, printable(title), target, _ms_since(started))

        try:
            items = msgspec.convert((arguments or {}).get("questions"), list[QuestionItem])
            if not 1 <= len(items) <= MAX_QUESTIONS:
                raise msgspec.ValidationError(f"ask between 1 and {MAX_QUESTIONS} questions")
        except (msgspec.ValidationError, AttributeError) as exc:
            return result(f"error: the question is not well formed: {exc}", False, "Asked a human: not well formed")
        question_id = f"que_{uuid.uuid4().hex}"
        title = f"Asked a human: {items[0].header or items[0].question}"[:200]
        command = AskQuestionCommand(
            workspace_id=self.run.workspace_id,
            question_id=question_id,
            task_id=self.task_id,
            run_id=str(self.run.id),
            questions=msgspec.to_builtins(items),
            tool={"messageID": f"msg_{self.run.id.hex}_{self.turn}", "callID": call_id},
        )
        self.deps.answers.expect(question_id)
        try:
            try:
                expires_at = await ask(self.deps.nc, command, self.deps.settings.command_timeout_s)
            except AskFailed as exc:
                # A question review recorded though its reply came too late is waited for like
                # any other: someone may answer it, and the agent should hear.
                late = await recorded_expiry(self.deps.store, question_id) if exc.timed_out else None
                if late is None:
                    return result(f"error: {exc}", False, title, question_id)
                expires_at = late
            self.line(f"waiting for a human: {items[0].question} (question {question_id})")
            # Waiting for a person holds no run slot: other runs (other workspaces') go on.
            self.slot.park()
            waiting_since = time.perf_counter()
            try:
                answers = await self.deps.answers.outcome(question_id, expires_at)
            finally:
                # The person's time only: waiting for a slot to go on counts, as at the start.
                self.waited_s += time.perf_counter() - waiting_since
                if _cancelling():
                    self.slot.leave()  # stopped as it waited (its task purged): it goes on no more
                else:
                    await self.slot.unpark()
        finally:
            self.deps.answers.forget(question_id)  # however the wait ended
        if answers is None and await self._task_stopped():
            # Its question was closed by a purge this process did not hear of: the run stops
            # rather than call the model for a task nobody can see any more.
            raise TaskStopped(self.task_id)
        if answers is None:
            self.line(f"question {question_id} expired without an answer", "warn")
            text = "error: nobody answered in time and the question expired. Decide with your best judgement."
            return result(text, False, title, question_id)
        self.line(f"a human answered question {question_id}")
        return result(answer_text(items, answers), True, title, question_id)

    async def _task_stopped(self) -> bool:
        """Whether the run's task was stopped under it (a purge): this process heard of it, or
        the task is on record as cancelled. Read only when a question went unanswered."""
        if self.deps.purges.is_stopped(self.task_id):
            return True
        task_id = uuid.UUID(self.task_id)
        try:
            task = (await asyncio.to_thread(self.deps.store.load_many, [task_id])).get(task_id)
        except Exception:
            log.warning("run %s: could not read its task; it goes on", self.run.id, exc_info=True)
            return False
        return isinstance(task, Task) and task.status == CANCELLED


class RunTakenOver(Exception):
    """Another executor recorded the run while this one was running it."""


class TaskStopped(Exception):
    """The run's task was stopped (its workspace purged): the run stops where it is."""


def _cancelling() -> bool:
    """Whether the running asyncio task is being cancelled (we are in its way out)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def execute(run: Run, event: EventEnvelope, deps: Deps) -> Run:
    """Runs the agent for `run`, whose start is on record, to its end (not saved here)."""
    p = event.payload
    recorder = RunRecorder(run, event.aggregate_id, deps)
    started = time.perf_counter()
    # Its own asyncio task, so that a purge can stop the agent wherever it waits (a model call,
    # a person, its checks) without cancelling the consumer that handles the dispatch.
    agent = asyncio.create_task(_attempt(recorder, p, deps, started), name=f"run {run.id}")
    try:
        with deps.purges.watching(event.aggregate_id, agent):
            await agent
    except asyncio.CancelledError:
        if _cancelling():
            # The executor itself stops: the agent goes with it, and the redelivered dispatch
            # finds the run interrupted.
            agent.cancel()
            raise
        _stopped(recorder, p, deps, started, PURGED)  # a purge cancelled the agent
    except TaskStopped:
        _stopped(recorder, p, deps, started, TASK_CANCELLED)
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
            recorder.line("the agent failed unexpectedly", "error")
    await recorder.flush()
    return run


TASK_CANCELLED = "stopped: its task was cancelled"


def _stopped(recorder: RunRecorder, p: dict[str, Any], deps: Deps, started: float, reason: str) -> None:
    """The run of a task a purge stopped ends for good, charged for what it spent: its recorded
    calls, and at its estimate the model call it had under way, which may have been paid."""
    run = recorder.run
    if run.status != STARTED:
        return
    turn = recorder.calling
    if turn is None:
        in_flight = None
    elif turn == 1:
        in_flight = _first_call(run, p, deps.settings)
    else:
        in_flight = (run.started_call or {}).get("usage")
    run.cancel(reason, recorder.working_ms(started), in_flight)


def agent_spec(run: Run, p: dict[str, Any], settings: Settings) -> tuple[AgentSpec, Repository]:
    """The agent a dispatch (`p`, its payload) runs, and the repository it starts from."""
    config = p["config"]
    repo = Repository(p["files"])
    _carry_over(repo, p.get("previous_output"))
    spec = AgentSpec(
        agent_type=run.agent_type,
        provider=run.provider,
        model=run.model,
        system=system_prompt(run.agent_type),
        first_message=first_message(
            p["description"], repo.current(), p.get("earlier"), p.get("previous_error"), run.attempt
        ),
        max_tokens=config.get("maxTokens", 4096),
        temperature=config.get("temperature", 0.0),
        max_turns=settings.agent_max_turns,
    )
    return spec, repo


async def _attempt(recorder: RunRecorder, p: dict[str, Any], deps: Deps, started: float) -> None:
    run, settings = recorder.run, deps.settings
    retry = f" (self-heal retry of: {_first_line(p['previous_error'])})" if p.get("previous_error") else ""
    recorder.line(f"attempt {run.attempt} started with {run.provider} {run.model}{retry}")
    spec, repo = agent_spec(run, p, settings)
    async with recorder.slot:
        outcome = await run_agent(deps.providers, spec, repo, recorder)
    problems = (
        []
        if outcome.error
        else await check(repo, outcome.summary, settings.self_heal_collect_tests, recorder.save_in_background)
    )
    # What the checks report can quote the agent's code (and whatever it printed): no secrets.
    problems = [printable(redact(p)) for p in problems]
    output = _output(outcome)
    usage = _usage(outcome.usage)
    duration = recorder.working_ms(started)
    subrequests = outcome.model_calls + outcome.tool_calls
    changed = bool(outcome.changes.files or outcome.changes.deleted)
    if outcome.budget_stop is not None:
        on_exceeded = recorder.budget.on_exceeded if recorder.budget else "pause"
        run.stop_for_budget(outcome.budget_stop, on_exceeded, usage, duration, subrequests, output if changed else None)
    elif outcome.error:
        run.fail(outcome.error, usage, duration, subrequests, outcome.retryable, output if changed else None)
        recorder.line(f"attempt {run.attempt} failed: {outcome.error}", "error")
    elif problems:
        error = "the output failed the checks:\n" + "\n".join(problems)
        run.fail(error, usage, duration, subrequests, retryable=True, output=output)
        recorder.line(f"attempt {run.attempt} failed the checks: {_first_line(problems[0])}", "warn")
    else:
        run.succeed(output, usage, duration, subrequests)
        recorder.line(f"finished in {duration} ms: {outcome.summary}")


def _carry_over(repo: Repository, previous: dict[str, Any] | None) -> None:
    """A self-heal attempt starts from the failed attempt's changes, as if it had made them:
    deletions first (a deleted file may have become a folder), then the writes."""
    for path in (previous or {}).get("deletedFiles", []):
        if repo.read(path) is not None:
            repo.delete(path)
    for path, content in (previous or {}).get("files", {}).items():
        repo.write(path, content)


def _output(outcome: Outcome) -> dict[str, Any]:
    output: dict[str, Any] = {"files": outcome.changes.files, "summary": outcome.summary or ""}
    if outcome.changes.deleted:
        output["deletedFiles"] = outcome.changes.deleted
    if outcome.comments:
        output["comments"] = [{"path": c.path, "line": c.line, "body": c.body} for c in outcome.comments]
    return output


def _usage(u: Usage) -> dict[str, int]:
    return msgspec.structs.asdict(u)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else text


async def publish(event: EventEnvelope, deps: Deps) -> PullRequest:
    """The approved task's pull request. Without GitHub credentials the task still completes,
    and the event says plainly that no pull request was opened and why."""
    p, task_id = event.payload, event.aggregate_id
    task_url = f"{deps.settings.public_url.rstrip('/')}/tasks/{task_id}" if deps.settings.public_url else None
    try:
        pull = await open_pull_request(
            deps.github,
            event.workspace_id,
            task_id,
            p["repo"],
            p["changes"]["files"],
            p["changes"]["deleted"],
            p["summaries"],
            task_url,
            p["title"],
            deps.locks,
            approved_at_ms=event.occurred_at,
        )
    except TryLater as later:
        # The task stays approved meanwhile: its live log says why nothing has happened yet.
        log_line(deps, event.workspace_id, task_id, task_id[:8], f"[executor] pull request delayed: {later}", "warn")
        raise
    line = _pull_line(pull)
    log_line(deps, event.workspace_id, task_id, task_id[:8], line)
    return pull


def log_line(deps: Deps, workspace_id: str, task_id: str, worker: str, message: str, level: str = "log") -> None:
    """One line on the task's live log (never blocks, never raises)."""
    entry = LogEntry(
        level=level,  # type: ignore[arg-type]
        message=message,
        timestamp=int(time.time() * 1000),
        worker_id=worker,
        task_id=task_id,
    )
    deps.logs.emit(workspace_id, entry)


def _pull_line(pull: PullRequest) -> str:
    if pull.url:
        return f"[executor] pull request opened: {pull.url}"
    return f"[executor] no pull request opened: {pull.skipped_reason or pull.error}"
