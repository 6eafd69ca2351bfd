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


async def project_forever(store: EventStore, database_url: str, wakeups: Wakeups) -> None:
    conn = await asyncio.to_thread(psycopg.connect, database_url, autocommit=True)
    try:
        position = None  # read from the table once per leadership, then carried along
        while True:
            position = await asyncio.to_thread(projector.catch_up, store, conn, position)
            PROJECTOR_POSITION.set(position)
            await wakeups.wait(timeout=1.0)
    finally:
        conn.close()
