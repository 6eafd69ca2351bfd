"""The payloads of a WorkerMachine's events (owner: the executor): `worker_machine.<event>` on
the wire. One container started on Fly.io to do one run (a task configured for the `fly`
runner), what its worker reported at the end, and its destruction."""

from __future__ import annotations

from typing import Literal

import msgspec

from contracts.payloads.shapes import Payload

ReportStatus = Literal["succeeded", "failed"]
# Why a machine was destroyed: its run ended, its worker reported, or it did not claim its run in time.
DestroyReason = Literal["run_ended", "reported", "not_claimed"]


class WorkerMachineStarted(Payload, frozen=True, kw_only=True):
    task_id: str
    run_id: str
    subtask_id: str
    dispatch_seq: int  # the dispatch it was started for (a run it never claimed is failed from it)
    app: str
    region: str
    machine_id: str
    machine_name: str
    session_id: str  # the agent session made for the machine: the only one that may claim the run
    callback_token_hash: str  # SHA-256 of the per-run callback token (the token itself is the machine's)
    claim_by: int  # ms since the epoch: a machine that has not claimed its run by then is destroyed


class WorkerMachineReported(Payload, frozen=True, kw_only=True):
    """The worker's callback (`POST /api/callbacks/complete`), once."""

    status: ReportStatus
    pr_url: str | None = None
    error: str | None = None
    metadata: dict[str, str | int | float | bool | None] = {}


class WorkerMachineDestroyed(Payload, frozen=True, kw_only=True):
    reason: DestroyReason
    detail: str | None = None  # e.g. why Fly refused; never a token


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "worker_machine.started": WorkerMachineStarted,
    "worker_machine.reported": WorkerMachineReported,
    "worker_machine.destroyed": WorkerMachineDestroyed,
}
