"""The fence every holder's call passes (`heartbeat`, `complete`, `fail`, `release`): the run is
still claimed, by this session, with this token, and its lease has not passed. Any of them
failing refuses the call and changes nothing: a late holder can never end a run that another
may hold by now, even before the sweeper has acted."""

from __future__ import annotations

from typing import NamedTuple

from libs.domain.run import STARTED, Run


class Refusal(NamedTuple):
    status: int
    code: str
    message: str


def lease_end(run: Run, heartbeat_until: int | None) -> int | None:
    """When the run's lease ends: the later of its claim's end and its last heartbeat's."""
    ends = [t for t in (run.lease_until, heartbeat_until) if t is not None]
    return max(ends) if ends else None


def refusal(run: Run, session_id: str, token: str, heartbeat_until: int | None, now: int) -> Refusal | None:
    """Why the session may not act on the run with `token` now; None when it may."""
    if run.session_id != session_id:
        # Another session's run: the same answer whatever its state, so nothing is learnt of it.
        return Refusal(403, "not_lease_holder", f"run {run.id} is not held by this session")
    if not run.fenced_by(token):
        return Refusal(409, "claim_token_mismatch", f"the claim token is not the one run {run.id} was claimed with")
    if run.status != STARTED:
        return Refusal(409, "run_not_claimed", f"run {run.id} is {run.status}: its lease is over")
    end = lease_end(run, heartbeat_until)
    if end is not None and end <= now:
        return Refusal(409, "lease_expired", f"the lease on run {run.id} expired")
    return None
