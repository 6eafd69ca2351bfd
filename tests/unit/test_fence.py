"""The fence every call under a lease passes (`libs.leases.fence`)."""

from __future__ import annotations

from contracts.payloads.shapes import RunOutput
from libs.domain.run import Claim, Run, claim_token_hash
from libs.leases.fence import lease_end, refusal

NOW = 1_700_000_000_000


def held(until: int = NOW + 30_000) -> Run:
    claim = Claim(session_id="s-1", lease_until=until, lease_ttl_s=30, token_hash=claim_token_hash("clm_right"))
    run = Run.start("ws", "t-1", "sub", "codegen", 1, "anthropic", "m", claim=claim)
    run.collect_events()
    return run


def test_the_holder_with_its_token_inside_its_lease_may_act() -> None:
    assert refusal(held(), "s-1", "clm_right", None, NOW) is None


def test_each_way_of_not_holding_the_run_is_refused_with_its_own_code() -> None:
    assert refusal(held(), "s-2", "clm_right", None, NOW).code == "not_lease_holder"  # type: ignore[union-attr]
    assert refusal(held(), "s-1", "clm_wrong", None, NOW).code == "claim_token_mismatch"  # type: ignore[union-attr]
    passed = refusal(held(until=NOW - 1), "s-1", "clm_right", None, NOW)
    assert passed is not None and (passed.status, passed.code) == (409, "lease_expired")
    ended = held()
    ended.succeed(RunOutput(files={}, summary="s"), {}, 1, 0)
    assert refusal(ended, "s-1", "clm_right", None, NOW).code == "run_not_claimed"  # type: ignore[union-attr]


def test_a_heartbeat_moves_the_lease_end_and_an_earlier_one_does_not_shorten_it() -> None:
    run = held(until=NOW - 1)
    assert refusal(run, "s-1", "clm_right", NOW + 10_000, NOW) is None
    assert lease_end(run, NOW + 10_000) == NOW + 10_000
    assert lease_end(held(), NOW + 1) == NOW + 30_000
