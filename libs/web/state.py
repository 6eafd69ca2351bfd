"""What an HTTP service's routes share, built once in its app's lifespan and kept on Litestar's
`app.state` as one typed value under one name, so each route reads the dependencies it uses by
name instead of untyped attributes.

Each service extends `EdgeState` with its own (the gateway's `GatewayState`, the stream's
`StreamState`); what every one holds is what the guard in `libs.web.auth` reads: the read-model
pool (API keys) and the settings (the admin token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from litestar import Litestar
from litestar.connection import ASGIConnection
from psycopg_pool import AsyncConnectionPool

from libs.config import Settings

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
