"""Cost-ledger service entry point: wiring only."""

from __future__ import annotations

from libs.bus.consumer import Subscription
from libs.pricing import PriceTable
from libs.runtime import Service, Started, batch_in_thread, run
from services.cost_ledger import handlers

# How runs end, and drafted plans: everything that used a model.
SUBJECTS = (
    "events.*.run.succeeded",
    "events.*.run.failed",
    "events.*.run.budget_stopped",
    "events.*.run.lease_expired",
    "events.*.run.released",
    "events.*.task.planned",
)


def _subscriptions(started: Started) -> list[Subscription]:
    handle = batch_in_thread(handlers.on_events, started.store, PriceTable.from_env())
    return [Subscription("cost-ledger", SUBJECTS, handle)]


SERVICE = Service(
    "cost-ledger",
    9104,
    wire=lambda started: started,  # it opens nothing of its own: what the runtime started will do
    subscriptions=_subscriptions,
    kept_aggregates=1024,  # a task's ledger is charged once per run: keep the open ones between charges
)


def main() -> None:
    run(SERVICE)
