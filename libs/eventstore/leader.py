"""Single-active followers: a PostgreSQL advisory lock held for as long as the session lives."""

from __future__ import annotations

import asyncio
import logging

import psycopg

log = logging.getLogger(__name__)


async def hold_lock(database_url: str, key: int, name: str) -> psycopg.AsyncConnection:
    """Returns once this process holds the lock; the connection keeps it until closed."""
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        except psycopg.OperationalError:
            log.warning("%s: PostgreSQL unreachable; trying again", name)
            await asyncio.sleep(1.0)
            continue
        try:
            cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            row = await cur.fetchone()
        except psycopg.Error:
            row = None
        if row and row[0]:
            log.info("%s: this replica is the active one", name)
            return conn
        await conn.close()
        await asyncio.sleep(1.0)
