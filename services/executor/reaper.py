"""The reaper of container workers: the one actor that destroys Fly Machines.

It runs in the executor (the owner of the machines' records and their runs), on one replica at a
time (a PostgreSQL advisory lock, as the lease sweeper holds). Every `worker_reap_s` it reads the
machines not destroyed (`rm_worker_machines`: a handful, whatever the rest of the system does),
and destroys each whose work is over: its run ended (completed, failed, its lease expired, given
back, stopped for a budget or a purge), its worker reported, or it has not claimed its run by
its deadline (the run is then failed, so the planner tries again, up to the task's limit). Then
it records the destruction and stops the machine's session. A destroy Fly refuses is tried again
on the next round; one whose machine Fly no longer knows counts as done.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from eventsourcing.persistence import IntegrityError

from contracts.payloads.worker_machine import DestroyReason
from libs.agent.starting import dispatch_at
from libs.domain.run import STARTED, Run
from libs.domain.worker_machine import WorkerMachine
from libs.eventstore.leader import hold_lock
from libs.fly.client import FlyError
from libs.leases.clock import now_ms
from libs.readmodels import worker_machines
from libs.readmodels.schema import WORKER_REAPER_LOCK
from services.executor.containers import close_session
from services.executor.deps import Deps
from services.executor.unclaimed import unclaimed_failure

log = logging.getLogger(__name__)

PAGE = 100
NOT_CLAIMED = "its container worker did not claim the run in time"


def _live(deps: Deps) -> list[dict[str, Any]]:
    with deps.store.recorder.datastore.get_connection() as conn:
        return worker_machines.live(conn, PAGE)


def _due(machine: WorkerMachine, run: object, now: int) -> DestroyReason | None:
    """Why the machine's work is over; None while it is not."""
    if machine.report is not None:
        return "reported"
    if isinstance(run, Run):
        return None if run.status == STARTED else "run_ended"
    return "not_claimed" if now > machine.started.claim_by else None


async def reap_once(deps: Deps) -> int:
    """Destroys the machines whose work is over; how many."""
    rows = await asyncio.to_thread(_live, deps)
    if not rows:
        return 0
    machines = await asyncio.to_thread(deps.store.load_many, (uuid.UUID(r["machine_aggregate_id"]) for r in rows))
    runs = await asyncio.to_thread(deps.store.load_many, (uuid.UUID(r["run_id"]) for r in rows))
    now, reaped = now_ms(), 0
    for row in rows:
        machine = machines.get(uuid.UUID(row["machine_aggregate_id"]))
        if not isinstance(machine, WorkerMachine) or machine.destroyed is not None:
            continue  # destroyed meanwhile; the read model catches up
        reason = _due(machine, runs.get(uuid.UUID(row["run_id"])), now)
        if reason is not None and await _destroy(deps, machine, reason):
            reaped += 1
    return reaped


async def _destroy(deps: Deps, machine: WorkerMachine, reason: DestroyReason) -> bool:
    started = machine.started
    fly = await deps.fly.of(machine.workspace_id)
    detail: str | None = None
    if fly is None:
        # Its token was cleared since: nothing can reach the machine now. Recorded, and said.
        detail = f"the workspace's Fly settings are gone: destroy machine {started.machine_id} in app {started.app}"
    else:
        try:
            await deps.machines.destroy(fly, started.app, started.machine_id)
        except FlyError as exc:
            if not exc.not_found:
                log.warning("machine %s: not destroyed now (%s); trying again", started.machine_id, exc)
                return False
    changed: list[Any] = [machine]
    if reason == "not_claimed":
        dispatch = await asyncio.to_thread(dispatch_at, deps.store, started.dispatch_seq)
        if dispatch is not None:
            changed.append(unclaimed_failure(dispatch, deps.settings, NOT_CLAIMED, retryable=True))
    machine.destroy(reason, detail)
    try:
        await asyncio.to_thread(deps.store.save, changed)
    except IntegrityError:
        return False  # the run was claimed, or the machine recorded, meanwhile: the next round sees it
    log.info("run %s: machine %s destroyed (%s)", started.run_id, started.machine_id, reason)
    await close_session(deps, machine.workspace_id, started.session_id, f"its machine was destroyed ({reason})")
    return True


async def reap_forever(deps: Deps) -> None:
    lock = await hold_lock(deps.settings.database_url, WORKER_REAPER_LOCK, "container reaper")
    try:
        while True:
            try:
                await reap_once(deps)
            except Exception:
                log.warning("container reaper: a round failed; trying again", exc_info=True)
            await asyncio.sleep(deps.settings.worker_reap_s)
    finally:
        await lock.close()
