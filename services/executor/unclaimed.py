"""A run nobody will claim: one kept for a container that could not be started, or whose
worker never claimed it in time. The executor claims it itself and fails it at once, so the
planner sees the run end (and retries it, up to the task's limit, when another try may do)."""

from __future__ import annotations

from libs.agent.starting import Dispatch
from libs.config import Settings
from libs.domain.run import Claim, Run, claim_token_hash, new_claim_token
from libs.leases.clock import now_ms


def unclaimed_failure(event: Dispatch, settings: Settings, error: str, retryable: bool) -> Run:
    """The run, claimed by the executor and failed at once (unsaved): nobody worked on it, and
    nothing was spent. The planner retries it, up to the task's limit, when `retryable`."""
    p = event.payload
    claim = Claim(
        session_id=None,
        lease_until=now_ms(),
        lease_ttl_s=settings.lease_ttl_s,
        token_hash=claim_token_hash(new_claim_token()),
        dispatch_seq=event.seq,
    )
    run = Run.start(
        event.workspace_id,
        event.aggregate_id,
        p.subtask_id,
        p.agent_type,
        p.attempt,
        str(p.config.get("provider", "")),
        str(p.config.get("model", "")),
        claim=claim,
        handover=p.handover,
        previous_run_id=p.previous_run_id,
    )
    run.fail(error, {}, 0, 0, retryable=retryable)
    return run
