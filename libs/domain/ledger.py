"""Ledger: the priced cost of one task's provider calls, owned by the cost-ledger service."""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.ledger import LedgerCharged, LedgerOpened
from libs.domain.base import WorkspaceAggregate, derived_id


def ledger_id(task_id: str) -> UUID:
    return derived_id("ledger", task_id)


class Ledger(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        payload: LedgerOpened

    def __init__(self, workspace_id: str, payload: LedgerOpened) -> None:
        self.workspace_id = workspace_id
        self.task_id = payload.task_id
        self.charged_runs: list[str] = []
        self.total_usd = 0.0

    @classmethod
    def open(cls, workspace_id: str, task_id: str) -> Ledger:
        opened = LedgerOpened(task_id=task_id)
        return cls._create(cls.Opened, id=ledger_id(task_id), workspace_id=workspace_id, payload=opened)

    def charge(
        self,
        run_id: str,
        subtask_id: str,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int,
        cache_write_tokens: int,
        cost_usd: float,
        cpu_time_ms: int,
        subrequests: int,
        priced: bool,
        estimated: bool = False,
    ) -> None:
        """`estimated`: the usage includes an estimate, not a provider's count (a model call an
        interrupted run had in flight)."""
        if run_id in self.charged_runs:
            return  # a redelivered run is never charged twice
        charged = LedgerCharged(
            task_id=self.task_id,
            run_id=run_id,
            subtask_id=subtask_id,
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_tokens=cache_read_tokens,
            cache_write_tokens=cache_write_tokens,
            cost_usd=cost_usd,
            cpu_time_ms=cpu_time_ms,
            subrequests=subrequests,
            priced=priced,
            estimated=estimated,
        )
        self.emit(self.Charged, charged)

    class Charged(WorkspaceAggregate.Event):
        payload: LedgerCharged

        def apply(self, ledger: Ledger) -> None:
            ledger.charged_runs.append(self.payload.run_id)
            ledger.total_usd += self.payload.cost_usd
