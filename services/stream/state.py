"""What the stream service's routes share: built once in the app's lifespan (`app.py`),
installed on `app.state` as one value, and read by each route with `stream_state(request)`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection

from libs.eventstore.store import EventStore
from libs.web.state import EdgeState, state_of
from services.stream.broadcast import Broadcaster


@dataclass(frozen=True)
class StreamState(EdgeState):
    store: EventStore  # the log, for the feeds' catch-up beyond the read models
    broadcaster: Broadcaster  # the live events, per workspace
    relay_progress: dict[str, int]  # {"position": seq}: where this replica's relay is (the debug dump)


def stream_state(connection: ASGIConnection[Any, Any, Any, Any]) -> StreamState:
    return state_of(connection, StreamState)
