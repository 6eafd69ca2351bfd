"""What an HTTP service's routes share, built once in its app's lifespan and kept on Litestar's
`app.state` as one typed value under one name, so each route reads the dependencies it uses by
name instead of untyped attributes.

Each service extends `EdgeState` with its own (the gateway's `GatewayState`, the stream's
`StreamState`); what every one holds is what the guard in `libs.web.auth` reads: the read-model
pool (API keys) and the settings (the admin token).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from litestar import Litestar
from litestar.connection import ASGIConnection
from psycopg_pool import AsyncConnectionPool

from libs.config import Settings
from libs.readmodels import schema

APP_STATE = "deps"


@dataclass(frozen=True)
class EdgeState:
    settings: Settings
    pool: AsyncConnectionPool


S = TypeVar("S", bound=EdgeState)


def install(app: Litestar, state: EdgeState) -> None:
    """Called by the lifespan once every dependency is up: from then on the app serves."""
    app.state[APP_STATE] = state


def installed(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return isinstance(connection.app.state.get(APP_STATE), EdgeState)


def state_of(connection: ASGIConnection[Any, Any, Any, Any], kind: type[S]) -> S:
    state = connection.app.state.get(APP_STATE)
    if not isinstance(state, kind):
        # Only before the lifespan has run (or with another service's state): a wiring mistake.
        raise RuntimeError(f"the app's lifespan has not installed a {kind.__name__}")
    return state


async def open_read_models(database_url: str, min_size: int, max_size: int) -> AsyncConnectionPool:
    """The read-model tables (created if missing) and an open pool to read them. Autocommit: each
    read is one statement, and a pooled connection in a transaction would cost a BEGIN and a
    COMMIT around it; the reads that need one snapshot open their own."""
    with await asyncio.to_thread(psycopg.connect, database_url, autocommit=True) as conn:
        schema.create(conn)
    pool = AsyncConnectionPool(
        database_url, min_size=min_size, max_size=max_size, open=False, kwargs={"autocommit": True}
    )
    await pool.open()
    return pool
