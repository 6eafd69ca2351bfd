"""Budget caps, as a run sees them: a workspace's and a task's spending limits (its config's
`budgetUsd` and `taskBudgetUsd`), and what has been spent against each.

Spent means charged by the cost ledger, plus what the runs not charged yet have used (the read
models, read again before every call: each model call is on record before its run makes the
next one), plus what the run itself has used. Runs going on at the same time in one workspace see
each other's calls once they have returned (and the projector has them), so together they can
pass a cap only by the calls in flight at the same moment. A model missing from the price table
is priced at zero, so no cap stops it.
"""

from __future__ import annotations

import logging
import time

import msgspec

from contracts.payloads.shapes import BudgetCap
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable
from libs.readmodels import lookups

log = logging.getLogger(__name__)

# How long a run's first budget read waits for the read models to reach its dispatch: the
# projector is milliseconds behind the log; stopped, a run goes on with what they hold.
FRESHNESS_WAIT_S = 2.0
FRESHNESS_POLL_S = 0.005


class Budget(msgspec.Struct):
    caps: list[tuple[str, float, float]]  # (which cap, limit in USD, spent in USD)
    on_exceeded: str = "pause"

    def crossed(self, spent_here: float, estimate: float) -> BudgetCap | None:
        for cap, limit, spent in self.caps:
            if spent + spent_here + estimate > limit:
                return BudgetCap(
                    cap=cap, limit_usd=limit, spent_usd=round(spent + spent_here, 8), estimate_usd=round(estimate, 8)
                )
        return None

    def exhausted(self) -> BudgetCap | None:
        """The cap already reached, if any: what stops a run whose calls cannot be estimated
        beforehand (an agent session's, claimed over HTTP), before it starts."""
        for cap, limit, spent in self.caps:
            if spent >= limit:
                return BudgetCap(cap=cap, limit_usd=limit, spent_usd=round(spent, 8), estimate_usd=0.0)
        return None


def load_budget(
    store: EventStore, prices: PriceTable, workspace_id: str, task_id: str, run_id: str, caused_at: int = 0
) -> Budget:
    """The workspace's caps and what is spent against them, in one read, once the read models
    hold the log up to `caused_at` (the seq of the dispatch the run is for; waited for at most
    FRESHNESS_WAIT_S): a dispatch that a raised cap resumed is checked against that cap, not
    the one the read models held a moment before it (the run would stop again, for good)."""
    deadline = time.monotonic() + FRESHNESS_WAIT_S
    row = lookups.budget(store, workspace_id, task_id, run_id)
    while row["position"] < caused_at and time.monotonic() < deadline:
        time.sleep(FRESHNESS_POLL_S)
        row = lookups.budget(store, workspace_id, task_id, run_id)
    if row["position"] < caused_at:
        log.warning("budget of run %s read %d events behind its dispatch", run_id, caused_at - row["position"])
    config = row["config"] or {}
    workspace_spent, task_spent = float(row["workspace_spent"]), float(row["task_spent"])
    for running in row["running"]:
        usd = prices.price(running["model"], running).usd
        workspace_spent += usd
        task_spent += usd if running["this_task"] else 0.0
    caps = [
        (name, float(config[key]), spent)
        for name, key, spent in (("workspace", "budgetUsd", workspace_spent), ("task", "taskBudgetUsd", task_spent))
        if config.get(key) is not None
    ]
    return Budget(caps=caps, on_exceeded=config.get("onBudgetExceeded", "pause"))
