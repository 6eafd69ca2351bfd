"""The lease sweeper: the one actor that ends runs whose lease passed.

It runs in the executor, the single writer of Runs, on one replica at a time (a PostgreSQL
advisory lock, as the relay and the projector hold). Every `lease_sweep_s` it reads the claimed
runs whose lease ended (`rm_leases` and `lease_heartbeats`), checks each against the Run itself,
and appends `run.lease_expired` at the version it read: a `complete` that landed first makes that
append conflict, and the run stays completed. The planner then dispatches the next attempt
(`previous_run_id`), so a dead holder's run is back in the queue within its lease and a second.
"""

from __future__ import annotations

import asyncio
import logging
import time

from eventsourcing.persistence import IntegrityError

from libs.domain.run import STARTED, Run
from libs.eventstore.leader import hold_lock
from libs.eventstore.store import EventStore
from libs.leases import heartbeats
from libs.leases.clock import now_ms
from libs.leases.fence import lease_end
from libs.readmodels import lease_reads
from libs.readmodels.schema import LEASE_SWEEPER_LOCK

log = logging.getLogger(__name__)

PAGE = 200


def sweep_once(store: EventStore, now: int) -> int:
    """Expires the runs whose lease passed before `now`; how many it expired."""
    rows = lease_reads.lapsed(store, now, PAGE)
    if not rows:
        return 0
    ids = [r["run_id"] for r in rows]
    runs = store.load_many(ids)
    beats = heartbeats.latest(store, ids)
    expired = 0
    for run_id in ids:
        run = runs.get(run_id)
        if not isinstance(run, Run) or run.status != STARTED:
            continue  # ended meanwhile; the read model catches up
        end = lease_end(run, beats.get(run_id, (None, None))[0])
        if end is None or end >= now:
            continue  # a heartbeat came since the read
        if not heartbeats.mark_expired(store, run.id, run.claim_token_hash or "", run.lease_until or 0):
            continue  # a heartbeat came in its last moment: the lease lives on
        run.expire(end)
        try:
            store.save([run])
        except IntegrityError:
            continue  # the holder ended it first
        expired += 1
    return expired


PRUNE_EVERY_S = 60.0  # how often the heartbeats of ended runs are dropped


async def sweep_forever(store: EventStore, database_url: str, every_s: float) -> None:
    lock = await hold_lock(database_url, LEASE_SWEEPER_LOCK, "lease sweeper")
    pruned = time.monotonic()
    try:
        while True:
            try:
                count = await asyncio.to_thread(sweep_once, store, now_ms())
                if count:
                    log.info("lease sweeper: %d run(s) expired", count)
                if time.monotonic() - pruned > PRUNE_EVERY_S:
                    await asyncio.to_thread(heartbeats.prune, store)
                    pruned = time.monotonic()
            except Exception:
                log.warning("lease sweeper: a sweep failed; trying again", exc_info=True)
            await asyncio.sleep(every_s)
    finally:
        await lock.close()
