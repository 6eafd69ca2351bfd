"""Review service entry point: wiring only."""

from __future__ import annotations

from contracts.subjects import DECIDE_REVIEW
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.runtime import CommandHandler, Service, batch_in_thread, command_in_thread, run
from services.review import handlers


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    return [Subscription("review", ("events.*.task.review_requested",), batch_in_thread(handlers.on_events, store))]


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    return {DECIDE_REVIEW: command_in_thread(handlers.decide, store)}


SERVICE = Service("review", 9103, subscriptions=_subscriptions, commands=_commands)


def main() -> None:
    run(SERVICE)
