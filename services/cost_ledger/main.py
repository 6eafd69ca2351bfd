"""Cost-ledger service entry point: wiring only."""

from __future__ import annotations

import asyncio

from contracts.events import EventEnvelope
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.domain.ledger import Ledger
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable
from libs.runtime import Service, run
from services.cost_ledger import handlers


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    prices = PriceTable.from_env()

    async def handle(events: list[EventEnvelope]) -> list[Ledger]:
        return await asyncio.to_thread(handlers.on_events, events, store, prices)

    return [Subscription("cost-ledger", ("events.*.run.succeeded", "events.*.run.failed"), handle)]


SERVICE = Service("cost-ledger", 9104, subscriptions=_subscriptions)


def main() -> None:
    run(SERVICE)
