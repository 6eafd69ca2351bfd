"""Planner service entry point: wiring only."""

from __future__ import annotations

import asyncio

import msgspec

from contracts.events import EventEnvelope
from contracts.subjects import SUBMIT_TASKS, aggregate_events
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.domain.task import Task
from libs.eventstore.store import EventStore
from libs.runtime import CommandHandler, Service, run
from services.planner import handlers


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    async def handle(events: list[EventEnvelope]) -> list[Task]:
        return await asyncio.to_thread(handlers.on_events, events, store)

    subjects = (aggregate_events("run"), aggregate_events("gate"), aggregate_events("pull_request"))
    return [Subscription("planner", subjects, handle)]


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    async def submit(raw: bytes) -> bytes:
        return msgspec.json.encode(await asyncio.to_thread(handlers.submit_tasks, raw, store))

    return {SUBMIT_TASKS: submit}


SERVICE = Service("planner", 9101, subscriptions=_subscriptions, commands=_commands)


def main() -> None:
    run(SERVICE)
