"""Executor service entry point: wiring only."""

from __future__ import annotations

from typing import Any

from contracts.events import EventEnvelope
from libs.bus.consumer import EachAlone, Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.llm.providers import Providers
from libs.pricing import PriceTable
from libs.runtime import LOG_PUBLISHER, NATS, Service, run
from services.executor import handlers
from services.executor.pulls import BranchLocks, close_github_client, github_client
from services.executor.purges import Purges
from services.executor.questions import Answers
from services.executor.runslots import RunSlots


def _subscriptions(settings: Settings, store: EventStore) -> list[Subscription]:
    providers = SERVICE.state["providers"] = Providers(settings)
    slots = RunSlots(settings.max_concurrent_runs)
    github = SERVICE.state["github"] = github_client(settings)
    answers = SERVICE.state["answers"] = Answers(store, settings.question_check_s)
    nc = SERVICE.state[NATS]
    prices = PriceTable.from_env()
    locks = SERVICE.state["locks"] = BranchLocks(settings.database_url)
    purges = SERVICE.state["purges"] = Purges()
    deps = handlers.Deps(
        settings, store, providers, slots, SERVICE.state[LOG_PUBLISHER], github, nc, answers, prices, locks, purges
    )

    async def dispatched(event: EventEnvelope) -> list[Any]:
        return await handlers.on_dispatched(event, deps)

    async def approved(event: EventEnvelope) -> list[Any]:
        return await handlers.on_approved(event, deps)

    return [
        # It takes no more dispatches than it has run slots for: the others are left to other replicas.
        Subscription("executor", ("events.*.task.subtask_dispatched",), EachAlone(dispatched, capacity=slots)),
        # Approvals hold no run slot: a consumer of their own, so they never wait behind agent runs.
        Subscription("executor-pulls", ("events.*.task.approved",), EachAlone(approved)),
    ]


async def _stop() -> None:
    if "providers" in SERVICE.state:
        await SERVICE.state["providers"].close()
    await close_github_client(SERVICE.state.get("github"))
    if "answers" in SERVICE.state:
        await SERVICE.state["answers"].stop()
    if "locks" in SERVICE.state:
        await SERVICE.state["locks"].close()


async def _start(settings: Settings, store: EventStore) -> None:
    js = SERVICE.state[NATS].jetstream()
    await SERVICE.state["answers"].start(js)
    await SERVICE.state["purges"].start(js)


SERVICE = Service("executor", 9102, subscriptions=_subscriptions, on_start=_start, on_stop=_stop)


def main() -> None:
    run(SERVICE)
