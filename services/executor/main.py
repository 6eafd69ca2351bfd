"""Executor service entry point: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgspec

from contracts.events import EventEnvelope
from contracts.subjects import CLAIM_RUN, REPORT_WORKER, UNDER_LEASE
from libs.bus.consumer import EachAlone, Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.fly.machines import Machines
from libs.fly.settings import FlySettingsReader
from libs.leases import heartbeats
from libs.llm.providers import Providers
from libs.pricing import PriceTable
from libs.provider_keys import ProviderKeys
from libs.runtime import CommandHandler, Service, Started, command_in_thread, run
from services.executor import claims, publishing, reaper, reports, runs, under_lease
from services.executor.deps import Deps
from services.executor.github.branch_locks import BranchLocks
from services.executor.github.client import close_github_client, github_client
from services.executor.purges import Purges
from services.executor.questions import Answers
from services.executor.runslots import RunSlots
from services.executor.souls import Souls
from services.executor.sweeper import sweep_forever


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
        souls=Souls(store),
        keys=ProviderKeys(store, settings.secrets_key),
        fly=FlySettingsReader(store, settings.secrets_key),
        machines=Machines(settings.fly_api_url),
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
        # An orchestration's agent step is dispatched in the same shape (its task: the orchestration run).
        Subscription(
            "executor",
            ("events.*.task.subtask_dispatched", "events.*.orchestration_run.step_dispatched"),
            EachAlone(dispatched, capacity=deps.slots),
        ),
        # Approvals hold no run slot: a consumer of their own, so they never wait behind agent runs.
        Subscription("executor-pulls", ("events.*.task.approved",), EachAlone(approved)),
    ]


async def _start(deps: Deps) -> None:
    await asyncio.to_thread(heartbeats.create, deps.store)  # before its first run heartbeats
    settings = deps.settings
    deps.sweeper = asyncio.create_task(sweep_forever(deps.store, settings.database_url, settings.lease_sweep_s))
    deps.reaper = asyncio.create_task(reaper.reap_forever(deps))
    js = deps.nc.jetstream()
    await deps.answers.start(js)
    await deps.purges.start(js)
    await deps.keys.follow(js)
    await deps.fly.follow(js)


async def _stop(deps: Deps) -> None:
    # What `_deps` opened; the runtime closes what it started (NATS, the log publisher).
    for task in (deps.sweeper, deps.reaper):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    await deps.machines.close()
    await deps.providers.close()
    await close_github_client(deps.github)
    await deps.answers.stop()
    await deps.locks.close()


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    prices = PriceTable.from_env()  # a claim's budget check

    async def under(raw: bytes) -> bytes:
        return msgspec.json.encode(await under_lease.on_command(raw, store, settings.self_heal_collect_tests))

    return {
        CLAIM_RUN: command_in_thread(claims.claim_run, store, prices),
        UNDER_LEASE: under,
        REPORT_WORKER: command_in_thread(reports.report_worker, store, settings),
    }


SERVICE = Service(
    "executor",
    9102,
    wire=_deps,
    subscriptions=_subscriptions,
    commands=_commands,
    on_start=_start,
    on_stop=_stop,
    # Agent sessions' claims and calls under their leases come at once, and a `complete` waits
    # on the self-heal checks: each its own task, up to this many.
    command_workers=64,
)


def main() -> None:
    run(SERVICE)
