"""A container worker's report (`POST /api/callbacks/complete`, by way of the gateway): the
owner of the worker's machine and run checks the per-run callback token against the hash the
machine's record keeps, then records the report once.

The same report again answers `unchanged`; a different one is refused (409). A report agrees
with the run: `succeeded` only for a run the worker completed (its completion went through the
self-heal checks like any other), and `failed` for a run it still holds fails the run (another
attempt may do better), as does a failure before it claimed the run. The reaper destroys the
machine once the report is recorded.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, ReportWorker
from contracts.payloads.worker_machine import WorkerMachineReported
from libs.agent.starting import dispatch_at
from libs.config import Settings
from libs.domain.run import STARTED, SUCCEEDED, Run
from libs.domain.worker_machine import ReportConflict, WorkerMachine, callback_hash, worker_machine_id
from libs.eventstore.store import EventStore
from services.executor.unclaimed import unclaimed_failure

RECORDED, UNCHANGED = "recorded", "unchanged"
STATUSES = ("succeeded", "failed")
WORKER_FAILED = "the container worker reported a failure"


def _refused(status: int, code: str, message: str) -> CommandReply:
    return CommandReply(error=CommandError(status, code, message))


def report_worker(raw: bytes, store: EventStore, settings: Settings) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=ReportWorker)
        run_id = uuid.UUID(command.run_id)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        return _refused(400, "invalid_request", str(exc))
    if command.status not in STATUSES:
        return _refused(400, "invalid_request", f"status must be one of {', '.join(STATUSES)}")
    for _ in range(3):
        machine = store.load(worker_machine_id(run_id))
        # An unknown run and a wrong token look alike: a token tells nothing of other runs.
        if not isinstance(machine, WorkerMachine) or not machine.token_matches(callback_hash(command.token)):
            return _refused(401, "invalid_callback_token", "the callback token is not this run's")
        if machine.started.task_id != command.task_id:
            return _refused(400, "task_mismatch", f"run {run_id} is not a run of task {command.task_id}")
        try:
            answer = _record(store, settings, machine, command)
        except IntegrityError:
            continue  # the run or the machine moved meanwhile (its lease expired, the reaper): again
        return answer
    return _refused(409, "run_changed", f"run {run_id} kept changing; try again")


def _record(store: EventStore, settings: Settings, machine: WorkerMachine, command: ReportWorker) -> CommandReply:
    report = WorkerMachineReported(
        status=command.status,  # type: ignore[arg-type]  # checked against STATUSES above
        pr_url=command.pr_url,
        error=command.error,
        metadata=command.metadata,
    )
    run = store.load(uuid.UUID(machine.started.run_id))
    completed = isinstance(run, Run) and run.status == SUCCEEDED
    if report.status == "succeeded" and machine.report is None and not completed:
        return _refused(
            409,
            "run_not_completed",
            f"run {machine.started.run_id} has not completed: POST /api/agent/tasks/{{run_id}}/complete first",
        )
    try:
        if not machine.reported(report):
            return CommandReply(status=UNCHANGED)
    except ReportConflict as exc:
        return _refused(409, "report_conflict", str(exc))
    changed: list[Any] = [machine]
    error = command.error or WORKER_FAILED
    if report.status == "failed" and isinstance(run, Run) and run.status == STARTED:
        run.fail(error, {}, 0, 0, retryable=True)  # what it spent, it reported on its own calls
        changed.append(run)
    elif report.status == "failed" and run is None:
        dispatch = dispatch_at(store, machine.started.dispatch_seq)
        if dispatch is not None:
            changed.append(unclaimed_failure(dispatch, settings, error, retryable=True))
    return CommandReply(seq=store.save(changed), status=RECORDED)
