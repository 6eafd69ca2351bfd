"""Planner service entry point: wiring only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.events import EventEnvelope
from contracts.subjects import RETRY_TASK, START_ORCHESTRATION, STOP_TASK, SUBMIT_TASKS, aggregate_events
from libs.bus.consumer import EachAlone, Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.llm.providers import Providers
from libs.runtime import CommandHandler, Service, Started, batch_in_thread, command_in_thread, run
from services.planner import handlers, orchestrating, steering

# Only how runs end matter here, not their model and tool calls; of a gate, only its decision
# (every event delivered costs a wake-up and a tracking row, acted on or not).
SUBJECTS = (
    "events.*.run.started",
    "events.*.run.succeeded",
    "events.*.run.failed",
    "events.*.run.budget_stopped",
    "events.*.run.lease_expired",
    "events.*.run.released",
    "events.*.gate.decided",
    "events.*.input_gate.answered",
    aggregate_events("pull_request"),
    "events.*.workspace.purged",
    "events.*.workspace.config_updated",
)


@dataclass(frozen=True)
class Deps:
    store: EventStore
    providers: Providers  # for drafted plans; opened here, closed on stop


def _deps(started: Started) -> Deps:
    return Deps(started.store, Providers(started.settings))


def _subscriptions(deps: Deps) -> list[Subscription]:
    store, providers = deps.store, deps.providers
    drafts = handlers.Drafts()

    async def draft_plan(event: EventEnvelope) -> list[Any]:
        return await handlers.on_plan_request(event, store, providers, drafts)

    return [
        Subscription("planner", SUBJECTS, batch_in_thread(handlers.on_events, store)),
        # Drafting a plan calls a model: a consumer of its own, so it holds up nothing else.
        Subscription("planner-drafts", ("events.*.task.plan_requested",), EachAlone(draft_plan)),
    ]


async def _stop(deps: Deps) -> None:
    await deps.providers.close()


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    return {
        SUBMIT_TASKS: command_in_thread(handlers.submit_tasks, store),
        START_ORCHESTRATION: command_in_thread(orchestrating.start, store),
        STOP_TASK: command_in_thread(steering.stop_task, store),
        RETRY_TASK: command_in_thread(steering.retry_task, store),
    }


# Each task is reloaded at every step of its life: keep the unfinished ones between steps (a
# task holds its repository's files, so this bounds the memory they take).
SERVICE = Service(
    "planner",
    9101,
    wire=_deps,
    subscriptions=_subscriptions,
    commands=_commands,
    on_stop=_stop,
    kept_aggregates=1024,
)


def main() -> None:
    run(SERVICE)
