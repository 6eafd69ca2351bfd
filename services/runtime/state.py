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
from services.runtime.channel_waits import ChannelWaits
from services.runtime.claim_turns import ClaimTurns


@dataclass(frozen=True)
class RuntimeState(EdgeState):
    store: EventStore  # the runtime service is the single writer of agent sessions
    broker: NatsBroker  # commands to the executor, the owner of runs and their leases
    # Channels, kept between sends (`EventStore.kept`): a send then reads only what others
    # appended since, not the whole channel again (at 2,000 messages: 45 ms a send, ~10 ms kept).
    channel_store: EventStore
    waits: ChannelWaits  # the channels' long-polls (`recv?wait=true`)
    # Fired at each projector commit: a `claim-next` long-poll looks at the queue again.
    queue_changed: Pulse = field(default_factory=Pulse)
    claim_turns: ClaimTurns = field(default_factory=ClaimTurns)  # one claim of a session at a time


def runtime_state(connection: ASGIConnection[Any, Any, Any, Any]) -> RuntimeState:
    return state_of(connection, RuntimeState)
