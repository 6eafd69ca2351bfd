"""Planner service entry point: wiring only."""

from __future__ import annotations

from contracts.subjects import SUBMIT_TASKS, aggregate_events
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.runtime import CommandHandler, Service, batch_in_thread, command_in_thread, run
from services.planner import handlers

SUBJECTS = (aggregate_events("run"), aggregate_events("gate"), aggregate_events("pull_request"))


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    return [Subscription("planner", SUBJECTS, batch_in_thread(handlers.on_events, store))]


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    return {SUBMIT_TASKS: command_in_thread(handlers.submit_tasks, store)}


SERVICE = Service("planner", 9101, subscriptions=_subscriptions, commands=_commands)


def main() -> None:
    run(SERVICE)
