"""WorkerMachine: one Fly Machine started to do one run of a task configured for the `fly`
runner; owned by the executor (the single writer of Runs, whose runs these are).

Its id derives from the run's, so a redelivered dispatch, the worker's callback and the reaper
all find it. Its events are what happened to the machine: started (with the agent session made
for it, the only one that may claim the run, and the hash of the per-run callback token), the
worker's report (once: the same report again changes nothing, a different one is refused), and
its destruction.
"""

from __future__ import annotations

import hashlib
import hmac
from uuid import UUID

from contracts.payloads.worker_machine import (
    DestroyReason,
    WorkerMachineDestroyed,
    WorkerMachineReported,
    WorkerMachineStarted,
)
from libs.domain.base import WorkspaceAggregate, derived_id


def worker_machine_id(run_id: UUID | str) -> UUID:
    return derived_id("worker_machine", run_id)


def callback_hash(token: str) -> str:
    """What the record keeps of a per-run callback token (the token itself is the machine's)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ReportConflict(Exception):
    """A report that differs from the one already recorded."""


class WorkerMachine(WorkspaceAggregate):
    class Started(WorkspaceAggregate.Created):
        payload: WorkerMachineStarted

    def __init__(self, workspace_id: str, payload: WorkerMachineStarted) -> None:
        self.workspace_id = workspace_id
        self.started = payload
        self.report: WorkerMachineReported | None = None
        self.destroyed: WorkerMachineDestroyed | None = None

    @classmethod
    def start(cls, workspace_id: str, started: WorkerMachineStarted) -> WorkerMachine:
        return cls._create(
            cls.Started, id=worker_machine_id(started.run_id), workspace_id=workspace_id, payload=started
        )

    def token_matches(self, token_hash: str) -> bool:
        return hmac.compare_digest(self.started.callback_token_hash, token_hash)

    def reported(self, report: WorkerMachineReported) -> bool:
        """Records the worker's report; False when this very report is on record already.
        Raises ReportConflict for a report that differs from the recorded one."""
        if self.report is not None:
            if self.report != report:
                raise ReportConflict(f"the run's worker already reported {self.report.status}")
            return False
        self.emit(self.Reported, report)
        return True

    def destroy(self, reason: DestroyReason, detail: str | None = None) -> None:
        if self.destroyed is None:
            self.emit(self.Destroyed, WorkerMachineDestroyed(reason=reason, detail=detail))

    class Reported(WorkspaceAggregate.Event):
        payload: WorkerMachineReported

        def apply(self, machine: WorkerMachine) -> None:
            machine.report = self.payload

    class Destroyed(WorkspaceAggregate.Event):
        payload: WorkerMachineDestroyed

        def apply(self, machine: WorkerMachine) -> None:
            machine.destroyed = self.payload
