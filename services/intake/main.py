"""Intake service entry point: wiring only. GitHub command comments (the gateway's
`webhook_delivery.received`) become tasks through the planner, and the issues hear of them."""

from __future__ import annotations

import functools

import msgspec
from eventsourcing.domain import Aggregate
from nats.aio.client import Client as NatsClient
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.subjects import SUBMIT_TASKS
from libs.bus.consumer import EachAlone, Subscription, TryLater
from libs.runtime import Service, Started, run
from services.intake import handlers


async def _submit(nc: NatsClient, timeout_s: float, command: SubmitTasksCommand) -> CommandReply:
    try:
        raw = await nc.request(SUBMIT_TASKS, msgspec.json.encode(command), timeout=timeout_s)
    except (NoRespondersError, NatsTimeout):
        # Keyed by the delivery: sent again later, it creates the task once.
        raise TryLater("the planner did not answer") from None
    return msgspec.json.decode(raw.data, type=CommandReply)


def _deps(started: Started) -> handlers.Deps:
    submit = functools.partial(_submit, started.nc, started.settings.command_timeout_s)
    return handlers.Deps(started.settings, started.store, submit)


def _subscriptions(deps: handlers.Deps) -> list[Subscription]:
    async def delivered(event: EventEnvelope) -> list[Aggregate]:
        return await handlers.on_delivery(event, deps)

    async def ended(event: EventEnvelope) -> list[Aggregate]:
        return await handlers.on_task_end(event, deps)

    return [
        Subscription("intake", ("events.*.webhook_delivery.received",), EachAlone(delivered)),
        Subscription("intake-outcomes", ("events.*.task.completed", "events.*.task.failed"), EachAlone(ended)),
    ]


SERVICE = Service("intake", 9105, wire=_deps, subscriptions=_subscriptions)


def main() -> None:
    run(SERVICE)
