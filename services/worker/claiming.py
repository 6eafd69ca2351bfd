"""Claiming the run: long-polls `claim-next` until a run is claimed or the claim's deadline passes.

The agent API out of reach (or failing) is tried again, with backoff, until the deadline; a
refusal (a 4xx: a stopped session, a bad body, a lease it holds already) ends the claim at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from services.worker.agent_api import AgentApi, Claim, ClaimNext, Refused, Unavailable
from services.worker.config import WorkerConfig

log = logging.getLogger(__name__)

MAX_WAIT_S = 30.0  # one long-poll: well within proxies' idle timeouts
MAX_BACKOFF_S = 10.0
# A 204 sooner than this is not asked again at once: a server that does not wait is not hammered.
MIN_POLL_S = 0.5


class NotClaimed(Exception):
    """No run was claimed; the message says why."""


async def claim(api: AgentApi, config: WorkerConfig, clock: Callable[[], float] = time.monotonic) -> Claim:
    deadline = clock() + config.claim_wait_s
    backoff = 1.0
    while True:
        wait = round(max(0.0, min(MAX_WAIT_S, deadline - clock())), 1)
        body = ClaimNext(lease_ttl_seconds=config.lease_ttl_s, wait_seconds=wait, run_id=config.run_id)
        asked = clock()
        try:
            claimed = await api.claim_next(body)
        except Refused as exc:
            raise NotClaimed(f"the claim was refused: {exc.code}: {exc.message}") from None
        except Unavailable as exc:
            if clock() + backoff > deadline:
                raise NotClaimed(f"the agent API could not be reached to claim a run ({exc})") from None
            log.warning("claim: the agent API could not be reached (%s); trying again in %g s", exc, backoff)
            await asyncio.sleep(backoff)
            backoff = min(MAX_BACKOFF_S, backoff * 2)
            continue
        if claimed is not None:
            return claimed
        if clock() >= deadline:
            wanted = f"run {config.run_id}" if config.run_id else "a run"
            raise NotClaimed(f"{wanted} could not be claimed within {config.claim_wait_s:g} s: nothing was ready")
        backoff = 1.0
        if clock() - asked < MIN_POLL_S:
            await asyncio.sleep(MIN_POLL_S)
