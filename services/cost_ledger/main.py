"""Cost-ledger service entry point: wiring only."""

from __future__ import annotations

from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable
from libs.runtime import Service, batch_in_thread, run
from services.cost_ledger import handlers

# How runs end, and drafted plans: everything that used a model.
SUBJECTS = ("events.*.run.succeeded", "events.*.run.failed", "events.*.run.budget_stopped", "events.*.task.planned")


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    handle = batch_in_thread(handlers.on_events, store, PriceTable.from_env())
    return [Subscription("cost-ledger", SUBJECTS, handle)]


# A task's ledger is charged once per run: keep the open ones between charges.
SERVICE = Service("cost-ledger", 9104, subscriptions=_subscriptions, kept_aggregates=1024)


def main() -> None:
    run(SERVICE)
