"""The payloads of a task's cost Ledger's events (owner: cost-ledger): `ledger.<event>` on the wire."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class LedgerOpened(Payload, frozen=True, kw_only=True):
    task_id: str


class LedgerCharged(Payload, frozen=True, kw_only=True):
    task_id: str
    run_id: str  # for a drafted plan, derived_id("plan", task)
    subtask_id: str  # "plan" for a drafted plan
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    cpu_time_ms: int
    subrequests: int
    priced: bool  # false: an unknown model, priced at 0
    estimated: bool = False  # the usage includes an estimate (an interrupted run's call in flight)


PAYLOADS: dict[str, type[msgspec.Struct]] = {"ledger.opened": LedgerOpened, "ledger.charged": LedgerCharged}
