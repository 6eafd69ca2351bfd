"""`claim-next`: an agent session takes the oldest queued run it may, under a lease.

The claim *is* the Run's creation (`run.started` with the session, the lease's end and the
token's hash, at version 1): two sessions, or a session and the executor, racing for one run
race on one insert, and PostgreSQL lets exactly one win; the loser goes on to the next
candidate. Budget caps apply as to the executor's runs: a run whose workspace or task cap is
already reached is stopped for the budget as it is claimed (the task pauses or fails, as its
config says), and the session gets the next candidate instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import ClaimRunCommand, CommandError, LeaseReply
from libs.agent.starting import Dispatch, dispatch_at
from libs.budgets import load_budget
from libs.domain.run import Claim, Run, claim_token_hash, new_claim_token
from libs.domain.worker_machine import WorkerMachine, worker_machine_id
from libs.eventstore.store import EventStore
from libs.leases.clock import now_ms, until
from libs.pricing import PriceTable
from libs.readmodels import lease_reads
from libs.readmodels.task_log import first_line

CANDIDATES = 20  # looked at per claim: more than sessions ever race for the head of the queue


@dataclass(frozen=True)
class Claimed:
    run: Run
    token: str  # the claim token, whole: returned this once
    dispatch: Dispatch
    queued_at: int
    seq: int  # the claim's


def claim_run(raw: bytes, store: EventStore, prices: PriceTable) -> LeaseReply:
    try:
        command = msgspec.json.decode(raw, type=ClaimRunCommand)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return LeaseReply(error=CommandError(400, "invalid_request", str(exc)))
    claimed = claim_next(store, prices, command)
    if claimed is None:
        return LeaseReply()
    run = claimed.run
    return LeaseReply(
        seq=claimed.seq,
        run_id=str(run.id),
        claim_token=claimed.token,
        queued_at=claimed.queued_at,
        lease_until=run.lease_until,
    )


def claim_next(store: EventStore, prices: PriceTable, command: ClaimRunCommand) -> Claimed | None:
    """The run claimed for the command's session, or None when none it may take is ready."""
    if command.agent_types == []:
        return None  # it asked only for types its capabilities exclude
    rows = lease_reads.candidates(store, command.workspace_id, command.agent_types, CANDIDATES, command.run_id)
    # The queue is a read model, a few milliseconds behind: what it still shows may be claimed
    # already. One read of the candidates' Runs spares a doomed claim each (its dispatch read,
    # its budget read, its conflicting insert) when sessions race for the head of the queue.
    taken = store.load_many(uuid.UUID(str(r["run_id"])) for r in rows)
    for row in rows:
        if command.deadline_ms is not None and now_ms() >= command.deadline_ms:
            return None  # the session stopped waiting: a claim now would reach nobody
        if uuid.UUID(str(row["run_id"])) in taken:
            continue
        if row["reserved"] and not _kept_for(store, str(row["run_id"]), command.session_id):
            continue  # a container's run: its own session claims it
        dispatch = dispatch_at(store, row["dispatch_seq"])
        if dispatch is None or dispatch.workspace_id != command.workspace_id:
            continue
        claimed = _claim(store, prices, command, dispatch)
        if claimed is not None:
            run, token, seq = claimed
            return Claimed(run, token, dispatch, row["queued_at"], seq)
    return None


def _kept_for(store: EventStore, run_id: str, session_id: str) -> bool:
    """Whether the reserved run is kept for this session: the one made for its container."""
    machine = store.load(worker_machine_id(run_id))
    return isinstance(machine, WorkerMachine) and machine.started.session_id == session_id


def _claim(
    store: EventStore, prices: PriceTable, command: ClaimRunCommand, dispatch: Dispatch
) -> tuple[Run, str, int] | None:
    p = dispatch.payload
    token = new_claim_token()
    claim = Claim(
        session_id=command.session_id,
        lease_until=until(command.lease_ttl_s),
        lease_ttl_s=command.lease_ttl_s,
        token_hash=claim_token_hash(token),
        dispatch_seq=dispatch.seq,
    )
    config: dict[str, Any] = p.config
    run = Run.start(
        dispatch.workspace_id,
        dispatch.aggregate_id,
        p.subtask_id,
        p.agent_type,
        p.attempt,
        command.provider or str(config.get("provider", "")),
        command.model or str(config.get("model", "")),
        first_line(p.previous_error) if p.previous_error else None,
        claim=claim,
        handover=p.handover,
        previous_run_id=p.previous_run_id,
    )
    budget = load_budget(store, prices, run.workspace_id, run.task_id, str(run.id), caused_at=dispatch.seq)
    cap = budget.exhausted()
    if cap is not None:
        # Claimed and stopped in one append: the planner pauses (or fails) the task as it does
        # for the executor's runs, and the run is nobody's to work.
        run.stop_for_budget(cap, budget.on_exceeded, {}, 0, 0, None)
    try:
        seq = store.save([run])
    except IntegrityError:
        return None  # another claim of this run came first
    return None if cap is not None else (run, token, seq)
