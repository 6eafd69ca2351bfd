"""Review service entry point: wiring only."""

from __future__ import annotations

import asyncio

import msgspec

from contracts.events import EventEnvelope
from contracts.subjects import DECIDE_REVIEW
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.domain.gate import Gate
from libs.eventstore.store import EventStore
from libs.runtime import CommandHandler, Service, run
from services.review import handlers


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    async def handle(events: list[EventEnvelope]) -> list[Gate]:
        return await asyncio.to_thread(handlers.on_events, events, store)

    return [Subscription("review", ("events.*.task.review_requested",), handle)]


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    async def decide(raw: bytes) -> bytes:
        return msgspec.json.encode(await asyncio.to_thread(handlers.decide, raw, store))

    return {DECIDE_REVIEW: decide}


SERVICE = Service("review", 9103, subscriptions=_subscriptions, commands=_commands)


def main() -> None:
    run(SERVICE)
