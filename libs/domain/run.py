"""Run: one attempt of one subtask, owned by the executor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition

STARTED, SUCCEEDED, FAILED, BUDGET_STOPPED = "started", "succeeded", "failed", "budget_stopped"


def run_id_for(task_id: str, subtask_id: str, attempt: int) -> UUID:
    return derived_id("run", task_id, subtask_id, attempt)


class Run(WorkspaceAggregate):
    class Started(WorkspaceAggregate.Created):
        task_id: str
        subtask_id: str
        agent_type: str
        attempt: int
        provider: str
        model: str

    def __init__(
        self, workspace_id: str, task_id: str, subtask_id: str, agent_type: str, attempt: int, provider: str, model: str
    ) -> None:
        self.workspace_id = workspace_id
        self.task_id = task_id
        self.subtask_id = subtask_id
        self.agent_type = agent_type
        self.attempt = attempt
        self.provider = provider
        self.model = model
        self.status = STARTED
        self.model_calls = 0
        self.tool_calls = 0
        self.usage: dict[str, int] = {}  # what its recorded model calls used, summed

    @classmethod
    def start(
        cls, workspace_id: str, task_id: str, subtask_id: str, agent_type: str, attempt: int, provider: str, model: str
    ) -> Run:
        return cls._create(
            cls.Started,
            id=run_id_for(task_id, subtask_id, attempt),
            workspace_id=workspace_id,
            task_id=task_id,
            subtask_id=subtask_id,
            agent_type=agent_type,
            attempt=attempt,
            provider=provider,
            model=model,
        )

    def _require_started(self) -> None:
        if self.status != STARTED:
            raise IllegalTransition(f"run {self.id} already {self.status}")

    def succeed(self, output: dict[str, Any], usage: dict[str, int], duration_ms: int, subrequests: int) -> None:
        self._require_started()
        self.emit(
            self.Succeeded,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            provider=self.provider,
            model=self.model,
            output=output,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            attempt=self.attempt,
        )

    class Succeeded(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        provider: str
        model: str
        output: dict[str, Any]
        usage: dict[str, int]
        duration_ms: int
        subrequests: int
        attempt: int

        def apply(self, run: Run) -> None:
            run.status = SUCCEEDED

    def record_model_call(
        self,
        turn: int,
        ok: bool,
        duration_ms: int,
        usage: dict[str, int],
        stop_reason: str | None,
        tool_calls: int,
        error: str | None,
    ) -> None:
        self._require_started()
        self.emit(
            self.ModelCalled,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            provider=self.provider,
            model=self.model,
            turn=turn,
            status="ok" if ok else "error",
            duration_ms=duration_ms,
            usage=usage,
            stop_reason=stop_reason,
            tool_calls=tool_calls,
            error=error,
        )

    class ModelCalled(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        provider: str
        model: str
        turn: int
        status: str  # ok | error
        duration_ms: int
        usage: dict[str, int]
        stop_reason: str | None
        tool_calls: int
        error: str | None

        def apply(self, run: Run) -> None:
            run.model_calls += 1
            for key, tokens in self.usage.items():
                run.usage[key] = run.usage.get(key, 0) + tokens

    def record_tool_call(
        self, call_id: str, tool: str, ok: bool, title: str, target: str | None, duration_ms: int, error: str | None
    ) -> None:
        self._require_started()
        self.emit(
            self.ToolCalled,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            agent_type=self.agent_type,
            call_id=call_id,
            tool=tool,
            status="ok" if ok else "error",
            title=title,
            target=target,
            duration_ms=duration_ms,
            error=error,
        )

    class ToolCalled(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        agent_type: str
        call_id: str
        tool: str
        status: str  # ok | error
        title: str
        target: str | None
        duration_ms: int
        error: str | None

        def apply(self, run: Run) -> None:
            run.tool_calls += 1

    def fail(
        self,
        error: str,
        usage: dict[str, int],
        duration_ms: int,
        subrequests: int,
        retryable: bool = False,
        output: dict[str, Any] | None = None,
    ) -> None:
        """`retryable`: another attempt may succeed (a check failed, a timeout); `output`: the
        attempt's changes, which the next attempt starts from."""
        self._require_started()
        self.emit(
            self.Failed,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            provider=self.provider,
            model=self.model,
            error=error,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            attempt=self.attempt,
            retryable=retryable,
            output=output,
        )

    def stop_for_budget(
        self,
        cap: dict[str, Any],
        on_exceeded: str,
        usage: dict[str, int],
        duration_ms: int,
        subrequests: int,
        output: dict[str, Any] | None,
    ) -> None:
        """Stopped before a model call that would cross a budget cap: `cap` says which (`cap`,
        `limit_usd`, `spent_usd`, `estimate_usd`), `on_exceeded` what the task does (pause or
        fail); `usage` is what the run spent before, which is charged like any run's."""
        self._require_started()
        self.emit(
            self.BudgetStopped,
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            provider=self.provider,
            model=self.model,
            attempt=self.attempt,
            cap=cap,
            on_exceeded=on_exceeded,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            output=output,
        )

    class BudgetStopped(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        provider: str
        model: str
        attempt: int
        cap: dict[str, Any]
        on_exceeded: str  # "pause" | "fail"
        usage: dict[str, int]
        duration_ms: int
        subrequests: int
        output: dict[str, Any] | None

        def apply(self, run: Run) -> None:
            run.status = BUDGET_STOPPED

    class Failed(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        provider: str
        model: str
        error: str
        usage: dict[str, int]
        duration_ms: int
        subrequests: int
        attempt: int
        retryable: bool
        output: dict[str, Any] | None

        def apply(self, run: Run) -> None:
            run.status = FAILED
