"""Runtime service wiring (spec 002, the agent runtime): the Litestar app, the event store it
writes agent sessions to, and the read-model pool (API keys, workspaces)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from faststream.nats import NatsBroker
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig

from contracts.subjects import CLOSE_WORKER_SESSION, OPEN_WORKER_SESSION
from libs.config import Settings
from libs.eventstore.listen import Listener
from libs.eventstore.store import EventStore
from libs.readmodels.schema import READMODELS_CHANNEL
from libs.runtime import answer_commands, command_in_thread
from libs.web import openapi
from libs.web.bodies import JsonRequest
from libs.web.diagnostics import HANDLERS_WITH_DIAGNOSTICS
from libs.web.ops import VERSION, metrics, ready_route, request_metrics
from libs.web.state import install, installed, open_read_models
from services.runtime import (
    channels,
    context,
    coordinator,
    leases,
    me,
    session_reads,
    sessions,
    souls,
    spawn,
    stopping,
    worker_sessions,
)
from services.runtime.auth import require_caller
from services.runtime.channel_waits import ChannelWaits
from services.runtime.state import RuntimeState, runtime_state

# The channels a replica keeps between sends (the most recently written).
CHANNELS_KEPT = 256


@get("/health", sync_to_thread=False, opt={"public": True})
def health() -> dict[str, str]:
    return {"service": "runtime", "status": "healthy"}


async def _is_ready(request: Request[Any, Any, Any]) -> bool:
    return installed(request) and await runtime_state(request).broker.ping(timeout=1.0)


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await open_read_models(settings.database_url, min_size=1, max_size=10)  # API keys, workspaces
        store = await asyncio.to_thread(EventStore, settings.database_url, 8)
        channel_store = await asyncio.to_thread(EventStore, settings.database_url, 2, CHANNELS_KEPT)
        broker = NatsBroker(settings.nats_servers, logger=None)
        # The executor's commands about its container workers' sessions (the runtime owns sessions).
        answer_commands(
            broker, OPEN_WORKER_SESSION, "runtime", command_in_thread(worker_sessions.open_worker_session, store), 8
        )
        answer_commands(
            broker, CLOSE_WORKER_SESSION, "runtime", command_in_thread(worker_sessions.close_worker_session, store), 8
        )
        await broker.start()
        waits = ChannelWaits(settings.database_url)
        await waits.start()
        state = RuntimeState(settings, pool, store=store, broker=broker, channel_store=channel_store, waits=waits)
        # The projector's commits wake `claim-next` long-polls: a dispatch is in the queue then.
        listener = Listener(settings.database_url, READMODELS_CHANNEL, on_payload=lambda _: state.queue_changed.fire())
        await listener.start()
        install(app, state)
        sweeper = asyncio.create_task(stopping.sweep_ttl_forever(state))  # sessions past their TTL
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
            await listener.stop()
            await waits.stop()
            await broker.stop()
            await pool.close()
            channel_store.close()
            store.close()

    app = Litestar(
        route_handlers=[
            health,
            ready_route(_is_ready),
            metrics,
            sessions.create_session,
            sessions.stop_session,
            me.me,
            context.context,
            souls.set_soul,
            souls.get_soul,
            souls.validate_soul,
            *leases.ROUTES,
            spawn.spawn,
            coordinator.coordinator_config,
            session_reads.list_sessions,
            session_reads.show_session,
            channels.list_channels,
            channels.send,
            channels.reply,
            channels.recv,
        ],
        lifespan=[lifespan],
        guards=[require_caller],
        middleware=[request_metrics("runtime")],
        exception_handlers=HANDLERS_WITH_DIAGNOSTICS,
        request_class=JsonRequest,
        logging_config=None,
        openapi_config=OpenAPIConfig(title="Agent orchestrator: agent runtime", version=VERSION, path="/schema"),
    )
    openapi.document(app)
    return app
