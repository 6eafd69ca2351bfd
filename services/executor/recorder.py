"""The agent loop's observer for one Run: what the agent does goes on record as it happens (the
task's live log is derived from these records: `libs.readmodels.task_log`).

A model call is paid for the moment it returns, so its record is on the store before the run
waits for anything: the next model call (which waits for the save), a person's answer, a test
collection (both saved in the background meanwhile). The save before a model call also marks
that call as started, with its estimate (`run.model_call_started`; the first call's marker is the
run's start). An executor that stops mid-run thus leaves every call it paid for on record, the one
in flight as an estimate, and the interrupted run is charged for them. Between waits the run only
computes (its tools work on the files in memory), so the records of a last turn go with the run's
end in one append, after `flush`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.payloads.shapes import BudgetCap
from libs.agent.loop import ModelCall, estimated_usage
from libs.agent.tools import ToolResult
from libs.budgets import Budget, load_budget
from libs.domain.run import Run
from libs.observability.logs import redact
from services.executor import asking
from services.executor.deps import Deps
from services.executor.runslots import RunSlot

log = logging.getLogger(__name__)


class RunTakenOver(Exception):
    """Another executor recorded the run while this one was running it."""


class RunRecorder:
    """The agent loop's observer: each model and tool call becomes an event on the Run (and so a
    live log line once saved); it checks the budget caps before each model call, and asks the
    agent's questions (`asking`)."""

    def __init__(self, run: Run, task_id: str, deps: Deps, caused_at: int = 0) -> None:
        self.run = run
        self.deps = deps
        self.task_id = task_id
        self.caused_at = caused_at  # the seq of the dispatch: the first budget read waits for it
        self.turn = 0
        self.budget: Budget | None = None
        self._unsaved: list[Any] = []  # the Run's events taken for saving, in version order
        self._saving: asyncio.Task[None] | None = None
        self.taken_over = False
        self.slot: RunSlot = deps.slots.slot()  # held while its agent works (`runs._attempt`)
        self.waited_s = 0.0  # for people's answers: not the run's work, nor charged as its time
        self.calling: int | None = None  # the turn of the model call under way, if one is

    def working_ms(self, started: float) -> int:
        """The run's time since `started`, less what it spent waiting for people's answers: its
        `duration_ms`, and the time its charge counts (`cpuTimeMs`)."""
        return max(0, int((time.perf_counter() - started) * 1000) - round(self.waited_s * 1000))

    def model_called(self, call: ModelCall) -> None:
        self.turn, self.calling = call.turn, None
        self.run.record_model_call(
            call.turn,
            call.ok,
            call.duration_ms,
            msgspec.structs.asdict(call.usage),
            call.stop_reason,
            call.tool_calls,
            call.error,
        )

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
        pass  # each model call's record is saved before the next call (and shows on the live log then)

    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> BudgetCap | None:
        """The cap the next call could cross, or None to go ahead: then the call is marked as
        started and saved, with what the run recorded so far, before it is made."""
        turn = self.turn + 1
        if self.budget is None or self.budget.caps:
            # Read again before every call of a capped workspace: other runs' charges land meanwhile.
            # The first read waits for the read models to hold the dispatch (a resumed one's cap).
            caused_at = self.caused_at if self.budget is None else 0
            self.budget = await asyncio.to_thread(
                load_budget,
                self.deps.store,
                self.deps.prices,
                self.run.workspace_id,
                self.task_id,
                str(self.run.id),
                caused_at,
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

    def _crossed(self, budget: Budget, estimate: dict[str, int]) -> BudgetCap | None:
        prices, model = self.deps.prices, self.run.model
        estimate_usd = prices.price(model, estimate).usd
        spent_here = prices.price(model, self.run.usage).usd  # this run's calls, not charged yet
        return budget.crossed(spent_here, estimate_usd)

    async def ask_human(self, call_id: str, arguments: Any) -> ToolResult:
        """Asks, then waits until a human answers or the question expires (`asking`)."""
        return await asking.ask_human(self, call_id, arguments)
