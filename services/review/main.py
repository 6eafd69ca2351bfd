"""Review service entry point: wiring only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import psycopg

from contracts.subjects import ANSWER_QUESTION, ASK_QUESTION, DECIDE_REVIEW, RESUME_ORCHESTRATION
from libs.bus.consumer import Subscription
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.runtime import CommandHandler, Service, Started, batch_in_thread, command_in_thread, run
from services.review import handlers, resuming


@dataclass
class Deps:
    store: EventStore
    expiry: asyncio.Task[None] | None = None  # the question expiry loop, from `_start` to `_stop`


def _deps(started: Started) -> Deps:
    return Deps(started.store)


def _subscriptions(deps: Deps) -> list[Subscription]:
    subjects = (
        "events.*.task.review_requested",
        "events.*.workspace.purged",
        "events.*.run.failed",
        "events.*.run.lease_expired",
    )
    return [Subscription("review", subjects, batch_in_thread(handlers.on_events, deps.store))]


def _commands(settings: Settings, store: EventStore) -> dict[str, CommandHandler]:
    return {
        DECIDE_REVIEW: command_in_thread(handlers.decide, store),
        ASK_QUESTION: command_in_thread(handlers.ask, store, settings.question_expiry_s),
        ANSWER_QUESTION: command_in_thread(handlers.answer, store),
        RESUME_ORCHESTRATION: command_in_thread(resuming.resume, store),
    }


log = logging.getLogger(__name__)
EXPIRY_CHECK_S = 1.0


def _no_read_models(exc: BaseException) -> bool:
    """The read models' tables are not there (the event store wraps psycopg's error)."""
    error = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    return isinstance(error, psycopg.errors.UndefinedTable)


async def _expire_forever(store: EventStore) -> None:
    # A question's deadline is a time, not an event: a small indexed look every second.
    tables_missing = False
    while True:
        try:
            await asyncio.to_thread(handlers.expire_overdue, store)
            tables_missing = False
        except Exception as exc:
            # The stream service's projector makes the read models (at its first start, and
            # again in a rebuild): until they are there, no question can be found overdue.
            if not _no_read_models(exc):
                log.exception("expiring questions failed; trying again")
            elif not tables_missing:
                log.info("expiring questions waits for the read models to be made")
                tables_missing = True
        await asyncio.sleep(EXPIRY_CHECK_S)


async def _start(deps: Deps) -> None:
    deps.expiry = asyncio.create_task(_expire_forever(deps.store), name="question-expiry")


async def _stop(deps: Deps) -> None:
    if deps.expiry is not None:
        deps.expiry.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deps.expiry


SERVICE = Service(
    "review",
    9103,
    wire=_deps,
    subscriptions=_subscriptions,
    commands=_commands,
    on_start=_start,
    on_stop=_stop,
    kept_aggregates=1024,  # a gate is opened, then decided
)


def main() -> None:
    run(SERVICE)
