"""Runs the read-model projector, woken by the log's NOTIFY; one active replica."""

from __future__ import annotations

import asyncio
import logging

import psycopg

from libs.eventstore.listen import Wakeups
from libs.eventstore.store import EventStore
from libs.observability.metrics import PROJECTOR_POSITION
from libs.readmodels import projector

log = logging.getLogger(__name__)

# While the log is being written, a wake-up waits this long before reading: the events of every
# commit in between come in one batch, one transaction, instead of one each. The read models
# then lag the log by this much more under load; idle, the first commit is projected at once.
LINGER_S = 0.01


async def project_forever(store: EventStore, database_url: str, wakeups: Wakeups) -> None:
    conn = await asyncio.to_thread(psycopg.connect, database_url, autocommit=True)
    try:
        position = None  # read from the table once per leadership, then carried along
        while True:
            before = position
            position = await asyncio.to_thread(projector.catch_up, store, conn, position)
            PROJECTOR_POSITION.set(position)
            await wakeups.wait(timeout=1.0)
            if position != before:  # busy: more commits are on their way
                await asyncio.sleep(LINGER_S)
    finally:
        conn.close()
