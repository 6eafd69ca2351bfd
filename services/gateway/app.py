"""Gateway wiring: Litestar app, broker client, JetStream (live task logs), read-model pool, read-your-writes watch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import nats
from faststream.nats import NatsBroker
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig

from libs.bus.jetstream import ensure_events_stream
from libs.config import Settings
from libs.eventstore.store import EventStore
from libs.orchestrations.definitions import load_dir
from libs.readmodels import positions
from libs.web import openapi
from libs.web.auth import require_key
from libs.web.bodies import JsonRequest
from libs.web.errors import HANDLERS
from libs.web.ops import VERSION, metrics, ready_route, request_metrics
from libs.web.session import session_middleware
from libs.web.state import install, open_read_models
from services.gateway import (
    callbacks,
    credentials,
    files,
    fly_check,
    fly_settings,
    github_data,
    installations,
    key_checks,
    livelogs,
    orchestrations,
    questions,
    routes,
    signin,
    startup_check,
    task_feed,
    toollog,
    webhooks,
    workspace_settings,
    workspaces,
)
from services.gateway.edge import edge_of
from services.gateway.logfollower import LogFollower
from services.gateway.readyourwrites import ProjectionWatch
from services.gateway.state import GatewayState, gateway_state

MAX_BODY_BYTES = 6 * 1024 * 1024
ROUTES = [
    routes.health,
    routes.submit_tasks,
    routes.get_task,
    routes.review_task,
    routes.get_costs,
    livelogs.task_logs,
]


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(title="Agent orchestrator", version=VERSION, path="/schema")


async def _is_ready(request: Request[Any, Any, Any]) -> bool:
    state = gateway_state(request)
    return state.nc.is_connected and await state.broker.ping(timeout=1.0)


def create_app(settings: Settings) -> Litestar:
    # Before anything connects: a definition that is not valid stops the start (DefinitionError).
    catalogue = load_dir(Path(settings.orchestrations_dir))
    # The stream's and the runtime's routes on this URL too, when told where they are.
    edge = edge_of(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        pool = await open_read_models(settings.database_url, min_size=2, max_size=20)
        broker = NatsBroker(settings.nats_servers, logger=None)
        await broker.connect()
        # Its own connection for JetStream: the live task logs follow the EVENTS stream.
        nc = await nats.connect(settings.nats_servers, name="gateway", max_reconnect_attempts=-1)
        js = nc.jetstream()
        await ensure_events_stream(js, settings.events_stream_replicas)
        watch = ProjectionWatch(settings.database_url)
        await watch.listener.start()
        async with pool.connection() as conn:
            watch.caught_up_to(await positions.projector_position(conn))

        async def head() -> int:
            return await positions.log_head(pool)

        # The gateway is the single writer of Workspaces (the admin API, config, purge).
        store = await asyncio.to_thread(EventStore, settings.database_url)
        logs = LogFollower(js)
        install(
            app,
            GatewayState(
                settings,
                pool,
                broker=broker,
                watch=watch,
                head=head,
                nc=nc,
                js=js,
                store=store,
                logs=logs,
                orchestrations=catalogue,
            ),
        )
        try:
            yield
        finally:
            await logs.close()
            store.close()
            await watch.listener.stop()
            await nc.close()
            await broker.stop()
            await pool.close()

    app = Litestar(
        route_handlers=[
            *ROUTES,
            *workspaces.ROUTES,
            *workspace_settings.ROUTES,
            *credentials.ROUTES,
            *key_checks.ROUTES,
            *fly_settings.ROUTES,
            *fly_check.ROUTES,
            *questions.ROUTES,
            *toollog.ROUTES,
            *files.ROUTES,
            *orchestrations.ROUTES,
            *task_feed.ROUTES,
            *signin.ROUTES,
            *installations.ROUTES,
            *github_data.ROUTES,
            *startup_check.ROUTES,
            *webhooks.ROUTES,
            *callbacks.ROUTES,
            ready_route(_is_ready),
            metrics,
            *edge.routes,
        ],
        lifespan=[lifespan, edge.lifespan],
        guards=[require_key],
        # The sign-in cookie, read on spec 003's /api/* routes only (`libs.web.session`).
        middleware=[request_metrics("gateway"), *filter(None, [session_middleware(settings)])],
        exception_handlers=HANDLERS,
        request_class=JsonRequest,
        logging_config=None,
        openapi_config=openapi_config(),
        # Below the bus's max_payload (8 MB), so every accepted body fits in one command.
        request_max_body_size=MAX_BODY_BYTES,
    )
    livelogs.document(app.openapi_schema)
    routes.document(app.openapi_schema)
    workspaces.document(app.openapi_schema)
    orchestrations.document(app.openapi_schema)
    key_checks.document(app.openapi_schema)
    fly_check.document(app.openapi_schema)
    webhooks.document(app.openapi_schema)
    openapi.document(app)
    return app
