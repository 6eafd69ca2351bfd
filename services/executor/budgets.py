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

import msgspec

from contracts.payloads.shapes import BudgetCap
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable
from libs.readmodels import lookups


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


def load_budget(store: EventStore, prices: PriceTable, workspace_id: str, task_id: str, run_id: str) -> Budget:
    """The workspace's caps and what is spent against them, in one read."""
    row = lookups.budget(store, workspace_id, task_id, run_id)
    if row is None:
        return Budget(caps=[])
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
