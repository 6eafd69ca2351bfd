"""What the runtime service's routes share: built once in the app's lifespan (`app.py`),
installed on `app.state` as one value, and read by each route with `runtime_state(request)`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsBroker
from litestar.connection import ASGIConnection

from libs.eventstore.listen import Pulse
from libs.eventstore.store import EventStore
from libs.web.state import EdgeState, state_of


@dataclass(frozen=True)
class RuntimeState(EdgeState):
    store: EventStore  # the runtime service is the single writer of agent sessions
    broker: NatsBroker  # commands to the executor, the owner of runs and their leases
    # Fired at each projector commit: a `claim-next` long-poll looks at the queue again.
    queue_changed: Pulse = field(default_factory=Pulse)


def runtime_state(connection: ASGIConnection[Any, Any, Any, Any]) -> RuntimeState:
    return state_of(connection, RuntimeState)
