"""Executor service entry point: wiring only."""

from __future__ import annotations

from typing import Any

from contracts.events import EventEnvelope
from libs.bus.consumer import EachAlone, Subscription
from libs.llm.providers import Providers
from libs.pricing import PriceTable
from libs.runtime import Service, Started, run
from services.executor import publishing, runs
from services.executor.deps import Deps
from services.executor.github.branch_locks import BranchLocks
from services.executor.github.client import close_github_client, github_client
from services.executor.purges import Purges
from services.executor.questions import Answers
from services.executor.runslots import RunSlots


def _deps(started: Started) -> Deps:
    settings, store = started.settings, started.store
    return Deps(
        settings,
        store,
        providers=Providers(settings),
        slots=RunSlots(settings.max_concurrent_runs),
        github=github_client(settings),
        nc=started.nc,
        answers=Answers(store, settings.question_check_s),
        prices=PriceTable.from_env(),
        locks=BranchLocks(settings.database_url),
        purges=Purges(),
    )


def _subscriptions(deps: Deps) -> list[Subscription]:
    async def dispatched(event: EventEnvelope) -> list[Any]:
        return await runs.on_dispatched(event, deps)

    async def approved(event: EventEnvelope) -> list[Any]:
        return await publishing.on_approved(event, deps)

    return [
        # It takes no more dispatches than it has run slots for: the others are left to other replicas.
        Subscription("executor", ("events.*.task.subtask_dispatched",), EachAlone(dispatched, capacity=deps.slots)),
        # Approvals hold no run slot: a consumer of their own, so they never wait behind agent runs.
        Subscription("executor-pulls", ("events.*.task.approved",), EachAlone(approved)),
    ]


async def _start(deps: Deps) -> None:
    js = deps.nc.jetstream()
    await deps.answers.start(js)
    await deps.purges.start(js)


async def _stop(deps: Deps) -> None:
    # What `_deps` opened; the runtime closes what it started (NATS, the log publisher).
    await deps.providers.close()
    await close_github_client(deps.github)
    await deps.answers.stop()
    await deps.locks.close()


SERVICE = Service("executor", 9102, wire=_deps, subscriptions=_subscriptions, on_start=_start, on_stop=_stop)


def main() -> None:
    run(SERVICE)
