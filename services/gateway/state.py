"""What the gateway's routes share: built once in the app's lifespan (`app.py`), installed on
`app.state` as one value, and read by each route with `gateway_state(request)`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faststream.nats import NatsBroker
from litestar.connection import ASGIConnection
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext

from libs.eventstore.store import EventStore
from libs.orchestrations.definitions import Catalogue
from libs.web.state import EdgeState, state_of
from services.gateway.etag_cache import EtagCache
from services.gateway.logfollower import LogFollower
from services.gateway.readyourwrites import ProjectionWatch


@dataclass(frozen=True)
class GatewayState(EdgeState):
    broker: NatsBroker  # commands to their owners (request/reply)
    watch: ProjectionWatch  # read-your-writes: where the read models are
    head: Callable[[], Awaitable[int]]  # the log's highest seq
    nc: NatsClient  # its own connection, for JetStream
    js: JetStreamContext  # the live task logs (they follow the EVENTS stream)
    store: EventStore  # the gateway is the single writer of Workspaces
    logs: LogFollower  # the live part of the tasks' logs, shared by the WebSockets
    orchestrations: Catalogue  # spec 004's definitions, read from ORCHESTRATIONS_DIR at start
    # GitHub's answers to this replica's reads, with their ETags (`github_reads`).
    github_cache: EtagCache = field(default_factory=EtagCache)

    async def reach_head(self) -> bool:
        """Waits (briefly) for the read models to reach the log's head: for reads of what other
        services wrote (an agent's question, a tool call), which this gateway's writes do not cover."""
        return await self.watch.reach(await self.head(), self.settings.read_your_writes_timeout_s)


def gateway_state(connection: ASGIConnection[Any, Any, Any, Any]) -> GatewayState:
    return state_of(connection, GatewayState)
