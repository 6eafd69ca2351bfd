"""Run: one attempt of one subtask, owned by the executor."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition

STARTED, SUCCEEDED, FAILED = "started", "succeeded", "failed"


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

        def apply(self, run: Run) -> None:
            run.status = SUCCEEDED

    def fail(self, error: str, usage: dict[str, int], duration_ms: int, subrequests: int) -> None:
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
        )

    class Failed(WorkspaceAggregate.Event):
        task_id: str
        subtask_id: str
        provider: str
        model: str
        error: str
        usage: dict[str, int]
        duration_ms: int
        subrequests: int

        def apply(self, run: Run) -> None:
            run.status = FAILED
