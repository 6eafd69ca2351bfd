"""Budget caps, as a run sees them: a workspace's and a task's spending limits (its config's
`budgetUsd` and `taskBudgetUsd`), and what has been spent against each.

Spent means charged by the cost ledger (the read models, read again before every call) plus what
the run itself has used and not yet been charged for. A run is charged when it ends, so runs
going on at the same time in one workspace do not see each other's calls until then: together
they can pass a cap by what they spend meanwhile. A model missing from the price table is priced
at zero, so no cap stops it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from libs.eventstore.store import EventStore
from libs.readmodels import lookups


class Budget(msgspec.Struct):
    caps: list[tuple[str, float, float]]  # (which cap, limit in USD, spent in USD)
    on_exceeded: str = "pause"

    def crossed(self, spent_here: float, estimate: float) -> dict[str, Any] | None:
        for cap, limit, spent in self.caps:
            if spent + spent_here + estimate > limit:
                return {
                    "cap": cap,
                    "limit_usd": limit,
                    "spent_usd": round(spent + spent_here, 8),
                    "estimate_usd": round(estimate, 8),
                }
        return None


def load_budget(store: EventStore, workspace_id: str, task_id: str) -> Budget:
    """The workspace's caps and what is charged against them, in one read."""
    row = lookups.budget(store, workspace_id, task_id)
    if row is None:
        return Budget(caps=[])
    config = row["config"] or {}
    caps = [
        (name, float(config[key]), float(spent))
        for name, key, spent in (
            ("workspace", "budgetUsd", row["workspace_spent"]),
            ("task", "taskBudgetUsd", row["task_spent"]),
        )
        if config.get(key) is not None
    ]
    return Budget(caps=caps, on_exceeded=config.get("onBudgetExceeded", "pause"))
