"""Stream service wiring: relay, projector, broadcaster and the SSE routes in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

import nats
import psycopg
from litestar import Litestar, Request, get
from litestar.openapi import OpenAPIConfig

from libs.bus.jetstream import ensure_events_stream
from libs.config import Settings
from libs.eventstore.leader import hold_lock
from libs.eventstore.listen import Listener
from libs.eventstore.store import EVENTS_CHANNEL, EventStore
from libs.readmodels import feed_reads
from libs.readmodels.schema import PROJECTOR_LOCK, RELAY_LOCK
from libs.web import openapi
from libs.web.auth import require_key
from libs.web.errors import HANDLERS
from libs.web.ops import VERSION, metrics, ready_route, request_metrics
from libs.web.state import install, installed, open_read_models
from services.stream import routes, toollog
from services.stream.broadcast import Broadcaster
from services.stream.projection import project_forever
from services.stream.relay import relay_forever
from services.stream.state import StreamState

log = logging.getLogger(__name__)


@get("/health", include_in_schema=False, sync_to_thread=False, opt={"public": True})
def health() -> dict[str, str]:
    return {"service": "stream", "status": "healthy", "version": VERSION}


async def _is_ready(request: Request[Any, Any, Any]) -> bool:
    # Ready once the lifespan has started everything and installed the state.
    return installed(request)


async def _run_as_leader(settings: Settings, key: int, name: str, body: Any) -> None:
    """Runs `body` only while this replica holds the advisory lock; restarts it on failure."""
    while True:
        conn = await hold_lock(settings.database_url, key, name)
        work = asyncio.create_task(body())
        watch = asyncio.create_task(_lock_lost(conn))
        try:
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done:
                log.warning("%s: lost the database session holding its lock; standing down", name)
            elif work.exception() is not None:
                log.error("%s stopped; restarting it", name, exc_info=work.exception())
                await asyncio.sleep(1.0)
        finally:
            for task in (work, watch):
                task.cancel()
            await asyncio.gather(work, watch, return_exceptions=True)
            await conn.close()


async def _lock_lost(conn: psycopg.AsyncConnection) -> None:
    """Returns when the session that holds the lock is gone (and with it the lock)."""
    while True:
        await asyncio.sleep(2.0)
        try:
            async with asyncio.timeout(5.0):
                await conn.execute("SELECT 1")
        except (psycopg.Error, TimeoutError):
            return


def create_app(settings: Settings) -> Litestar:
    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncGenerator[None, None]:
        store = EventStore(settings.database_url)
        pool = await open_read_models(settings.database_url, min_size=2, max_size=20)
        nc = await nats.connect(settings.nats_servers, name="stream", max_reconnect_attempts=-1)
        js = nc.jetstream()
        await ensure_events_stream(js, settings.events_stream_replicas)
        broadcaster = Broadcaster()
        await broadcaster.start(js)
        broadcaster.remember_stopped(await feed_reads.purged_stopped(pool))
        # One LISTEN connection wakes both followers of the log.
        relay_wakeups = Listener(settings.database_url, EVENTS_CHANNEL)
        projector_wakeups = relay_wakeups.follower()
        await relay_wakeups.start()
        relay_progress = {"position": 0}
        tasks = [
            asyncio.create_task(
                _run_as_leader(
                    settings, RELAY_LOCK, "relay", lambda: relay_forever(store, nc, relay_wakeups, relay_progress)
                )
            ),
            asyncio.create_task(
                _run_as_leader(
                    settings,
                    PROJECTOR_LOCK,
                    "projector",
                    lambda: project_forever(store, settings.database_url, projector_wakeups),
                )
            ),
        ]
        install(
            app,
            StreamState(settings, pool, store=store, broadcaster=broadcaster, relay_progress=relay_progress),
        )
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await relay_wakeups.stop()
            await nc.close()
            await pool.close()
            store.close()

    app = Litestar(
        route_handlers=[
            health,
            ready_route(_is_ready),
            metrics,
            routes.stream_events,
            routes.events_connections,
            routes.debug_dump,
            toollog.stream_tool_log,
        ],
        lifespan=[lifespan],
        guards=[require_key],
        middleware=[request_metrics("stream")],
        exception_handlers=HANDLERS,
        logging_config=None,
        openapi_config=OpenAPIConfig(title="Agent orchestrator: stream", version=VERSION, path="/schema"),
    )
    routes.document(app.openapi_schema)
    openapi.document(app)
    return app
