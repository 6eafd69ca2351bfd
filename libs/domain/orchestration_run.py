"""OrchestrationRun: one run of a spec 004 definition, owned by the planner.

running -> (paused -> running)* -> completed, or failed. Its `shared_state` and `step_history`
are folded from its events alone; the definition it follows is a blob by digest, which the
planner reads to decide the next step (`services.planner.orchestrating`), and so is a step's
long answer in `shared_state` (`libs.orchestrations.values`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec

from contracts.files import FileRef
from contracts.payloads.orchestration_run import (
    OrchestrationRunCompleted,
    OrchestrationRunFailed,
    OrchestrationRunPaused,
    OrchestrationRunResumed,
    OrchestrationRunStarted,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepRetried,
    OrchestrationRunStepStarted,
)
from contracts.payloads.shapes import Changes
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition

RUNNING, PAUSED, COMPLETED, FAILED = "running", "paused", "completed", "failed"
TERMINAL = frozenset({COMPLETED, FAILED})
PURGED = "the workspace was purged"  # why a run that a purge of its workspace stopped failed


def orchestration_run_id(run_id: str) -> UUID:
    """The aggregate's id from spec 004's `run_id`: a run is found by the id its client holds."""
    return derived_id("orchestration_run", run_id)


def with_changes(files: dict[str, Any] | None, changes: Changes) -> dict[str, Any]:
    """A files key's value (`path -> {"digest", "size"}`; None: not written yet) with a step's
    changes applied: the files written, then those deleted (as the read model applies them)."""
    updated = {**(files or {}), **msgspec.to_builtins(changes.files)}
    for path in changes.deleted:
        updated.pop(path, None)
    return updated


def written(completed: OrchestrationRunStepCompleted) -> Any:
    """What a step's completion writes to its output key: its value, or a long one by digest
    (`{"digest", "size"}`, as a files key holds a file: `libs.orchestrations.values`)."""
    ref = completed.value_ref
    return completed.value if ref is None else {"digest": ref.digest, "size": ref.size}


class StepEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One line of spec 004's `step_history`."""

    step_id: str
    step_name: str
    type: str
    status: str  # "running" | "completed" | "paused" | "failed"
    turns: int = 0
    cost_usd: float = 0.0


class OrchestrationRun(WorkspaceAggregate):
    class Started(WorkspaceAggregate.Created):
        payload: OrchestrationRunStarted

    def __init__(self, workspace_id: str, payload: OrchestrationRunStarted) -> None:
        self.workspace_id = workspace_id
        self.run_id = payload.run_id
        self.orchestration_id = payload.orchestration_id
        self.digest = payload.digest
        self.definition = payload.definition
        self.max_cost_usd = payload.max_cost_usd
        self.shared_state: dict[str, Any] = dict(payload.shared_state)
        self.step_history: list[StepEntry] = []
        self.status = RUNNING
        self.visits: dict[str, int] = {}
        self.dispatched: OrchestrationRunStepDispatched | None = None  # the agent step under way
        # The run's last pause (kept once it is resumed: a resume retried is told from another by it).
        self.paused: OrchestrationRunPaused | None = None
        self.response: str | None = None

    @classmethod
    def start(
        cls,
        workspace_id: str,
        run_id: str,
        orchestration_id: str,
        digest: str,
        definition: FileRef,
        message: str,
        first_key: str,
        max_cost_usd: float | None,
        files: dict[str, dict[str, Any]] | None = None,
    ) -> OrchestrationRun:
        """`files`: the files keys the run starts with (key -> `path -> {"digest", "size"}`)."""
        payload = OrchestrationRunStarted(
            run_id=run_id,
            orchestration_id=orchestration_id,
            digest=digest,
            definition=definition,
            message=message,
            max_cost_usd=max_cost_usd,
            shared_state={first_key: message, **(files or {})},
        )
        return cls._create(cls.Started, id=orchestration_run_id(run_id), workspace_id=workspace_id, payload=payload)

    @property
    def settled(self) -> bool:
        return self.status in TERMINAL

    @property
    def current_step(self) -> str | None:
        return self.step_history[-1].step_id if self.step_history else None

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.step_history)

    @property
    def step_spent(self) -> tuple[int, float]:
        """The turns and cost of the step under way so far: its attempts that ended without
        doing it (a step's entry shows what all its attempts spent, not only the last's)."""
        last = self.step_history[-1] if self.step_history else None
        return (last.turns, last.cost_usd) if last is not None and last.status == RUNNING else (0, 0.0)

    def _require(self, *statuses: str) -> None:
        if self.status not in statuses:
            raise IllegalTransition(f"orchestration run {self.run_id} is {self.status}")

    def start_step(self, step_id: str, step_name: str, step_type: str) -> int:
        """Enters a step; the visit it is (a loop enters a step again)."""
        self._require(RUNNING)
        visit = self.visits.get(step_id, 0) + 1
        self.emit(
            self.StepStarted,
            OrchestrationRunStepStarted(step_id=step_id, step_name=step_name, type=step_type, visit=visit),
        )
        return visit

    def dispatch_step(self, dispatch: OrchestrationRunStepDispatched) -> None:
        self._require(RUNNING)
        self.emit(self.StepDispatched, dispatch)

    def retry_step(self, retried: OrchestrationRunStepRetried, dispatch: OrchestrationRunStepDispatched) -> None:
        """The step's Run ended without doing it: what it spent is counted to the step, which is
        dispatched again."""
        self._require(RUNNING)
        if retried.step_id != self.current_step:
            raise IllegalTransition(f"orchestration run {self.run_id} is not at step {retried.step_id}")
        self.emit(self.StepRetried, retried)
        self.emit(self.StepDispatched, dispatch)

    def complete_step(self, completed: OrchestrationRunStepCompleted) -> None:
        self._require(RUNNING)
        if completed.step_id != self.current_step:
            raise IllegalTransition(f"orchestration run {self.run_id} is not at step {completed.step_id}")
        self.emit(self.StepCompleted, completed)

    def pause(self, paused: OrchestrationRunPaused) -> None:
        self._require(RUNNING)
        self.emit(self.Paused, paused)

    def resume(self, resumed: OrchestrationRunResumed) -> None:
        self._require(PAUSED)
        if self.paused is None or resumed.gate != self.paused.gate:
            raise IllegalTransition(f"orchestration run {self.run_id} is not paused at {resumed.gate}")
        self.emit(self.Resumed, resumed)

    def complete(self, response: str) -> None:
        self._require(RUNNING)
        self.emit(self.Completed, OrchestrationRunCompleted(response=response))

    def fail(self, reason: str, turns: int = 0, cost_usd: float = 0.0) -> None:
        self._require(RUNNING, PAUSED)
        failed = OrchestrationRunFailed(reason=reason, step_id=self.current_step, turns=turns, cost_usd=cost_usd)
        self.emit(self.Failed, failed)

    def _last(self, **changes: Any) -> None:
        self.step_history[-1] = msgspec.structs.replace(self.step_history[-1], **changes)

    class StepStarted(WorkspaceAggregate.Event):
        payload: OrchestrationRunStepStarted

        def apply(self, run: OrchestrationRun) -> None:
            p = self.payload
            run.visits[p.step_id] = p.visit
            run.step_history.append(StepEntry(step_id=p.step_id, step_name=p.step_name, type=p.type, status=RUNNING))

    class StepDispatched(WorkspaceAggregate.Event):
        payload: OrchestrationRunStepDispatched

        def apply(self, run: OrchestrationRun) -> None:
            run.dispatched = self.payload

    class StepRetried(WorkspaceAggregate.Event):
        payload: OrchestrationRunStepRetried

        def apply(self, run: OrchestrationRun) -> None:
            turns, cost_usd = run.step_spent
            run._last(turns=turns + self.payload.turns, cost_usd=cost_usd + self.payload.cost_usd)
            run.dispatched = None

    class StepCompleted(WorkspaceAggregate.Event):
        payload: OrchestrationRunStepCompleted

        def apply(self, run: OrchestrationRun) -> None:
            p = self.payload
            if p.output is not None:
                run.shared_state[p.output] = written(p)
            if p.files_key is not None and p.changes is not None:
                run.shared_state[p.files_key] = with_changes(run.shared_state.get(p.files_key), p.changes)
            run.dispatched = None
            run._last(status=COMPLETED, turns=p.turns, cost_usd=p.cost_usd)

    class Paused(WorkspaceAggregate.Event):
        payload: OrchestrationRunPaused

        def apply(self, run: OrchestrationRun) -> None:
            run.status = PAUSED
            run.paused = self.payload
            run._last(status=PAUSED)

    class Resumed(WorkspaceAggregate.Event):
        payload: OrchestrationRunResumed

        def apply(self, run: OrchestrationRun) -> None:
            run.status = RUNNING
            run.shared_state.update(self.payload.values)
            run._last(status=COMPLETED)

    class Completed(WorkspaceAggregate.Event):
        payload: OrchestrationRunCompleted

        def apply(self, run: OrchestrationRun) -> None:
            run.status = COMPLETED
            run.response = self.payload.response

    class Failed(WorkspaceAggregate.Event):
        payload: OrchestrationRunFailed

        def apply(self, run: OrchestrationRun) -> None:
            run.status = FAILED
            run.response = self.payload.reason
            run.dispatched = None
            if run.step_history and run.step_history[-1].status == RUNNING:
                run._last(status=FAILED, turns=self.payload.turns, cost_usd=self.payload.cost_usd)
