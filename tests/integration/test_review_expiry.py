"""Review's expiry timer before the read models exist (a fresh system, where the stream
service makes them, or during a rebuild): it waits, saying so once, and starts expiring
questions as soon as the tables are there."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg
import pytest

from libs.eventstore.store import EventStore
from libs.readmodels import schema
from services.review import main

pytestmark = pytest.mark.integration


async def test_the_expiry_timer_waits_quietly_for_the_read_models(
    store: EventStore, postgres_url: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(main, "EXPIRY_CHECK_S", 0.05)
    rounds: list[int] = []
    expire = main.handlers.expire_overdue
    monkeypatch.setattr(main.handlers, "expire_overdue", lambda s: rounds.append(expire(s)) or rounds[-1])
    caplog.set_level(logging.INFO, logger=main.log.name)

    timer = asyncio.create_task(main._expire_forever(store))
    try:
        await asyncio.sleep(0.5)  # several rounds without the tables
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            schema.create(conn)
        await asyncio.sleep(0.5)
    finally:
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer

    records = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == main.log.name]
    assert records == [(logging.INFO, "expiring questions waits for the read models to be made")]
    assert rounds and rounds[-1] == 0, "it expires questions again (none are due) once the tables are there"
