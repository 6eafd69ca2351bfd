"""How a bus worker service (planner, executor, review, cost-ledger) is wired and run.

One place: settings from the environment, the event store, the FastStream broker with the
service's command handlers, its durable event consumers, and an ops HTTP port with
`/health`, `/ready` and `/metrics`. Each service's `main.py` only names its parts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import nats
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from prometheus_client import make_asgi_app

from contracts.commands import CommandError, CommandReply
from libs.bus.consumer import EventConsumer, InThread, Subscription
from libs.bus.jetstream import ensure_events_stream
from libs.bus.logs import LogPublisher, ensure_logs_stream
from libs.config import Settings, load_settings
from libs.domain.errors import EventTooLarge
from libs.eventstore.store import EventStore
from libs.hardening import forbid_inspection
from libs.observability.logs import setup_logging
from libs.observability.metrics import COMMANDS
from libs.outage import OUTAGE_MESSAGE, outage

log = logging.getLogger(__name__)

CommandHandler = Callable[[bytes], Awaitable[bytes]]


@dataclass
class Service:
    """What a worker service is made of; `main.py` builds one and calls `run`."""

    name: str
    default_port: int
    subscriptions: Callable[[Settings, EventStore], list[Subscription]] = lambda s, e: []
    commands: Callable[[Settings, EventStore], dict[str, CommandHandler]] = lambda s, e: {}
    on_start: Callable[[Settings, EventStore], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None
    # Aggregates the store keeps between loads (EventStore's `kept`): for services whose
    # handlers reload the same aggregates step after step and never change one after saving it.
    kept_aggregates: int = 0
    # What the service's parts share at run time (e.g. provider clients to close on stop).
    # The runtime puts the service's started `LogPublisher` under LOG_PUBLISHER before it
    # builds the subscriptions, and flushes it on stop.
    state: dict[str, Any] = field(default_factory=dict)


LOG_PUBLISHER = "log_publisher"
NATS = "nats"  # the service's NATS connection (JetStream consumers, requests to other owners)


def batch_in_thread(handler: Callable[..., Sequence[Any]], *deps: Any) -> InThread:
    """A synchronous batch handler `(events, *deps)`, run off the event loop."""
    return InThread(handler, deps)


def command_in_thread(handler: Callable[..., msgspec.Struct], *deps: Any) -> CommandHandler:
    """A synchronous command handler `(raw, *deps) -> reply Struct`, run off the event loop."""

    async def handle(raw: bytes) -> bytes:
        return msgspec.json.encode(await asyncio.to_thread(handler, raw, *deps))

    return handle


def _json(body: object, status: int = 200) -> AsgiResponse:
    return AsgiResponse(msgspec.json.encode(body), status, headers={"content-type": "application/json"})


def build_app(service: Service, settings: Settings) -> AsgiFastStream:
    store = EventStore(settings.database_url, kept=service.kept_aggregates)
    broker = NatsBroker(settings.nats_servers, logger=None)
    for subject, handler in service.commands(settings, store).items():
        broker.subscriber(subject, queue=service.name)(_bytes_handler(subject, handler))

    consumers: list[EventConsumer] = []
    nc_holder: list[NatsClient] = []

    async def start_consumers() -> None:
        nc = await nats.connect(settings.nats_servers, name=f"{service.name}-consumers")
        nc_holder.append(nc)
        js = nc.jetstream()
        await ensure_events_stream(js, settings.events_stream_replicas)
        await ensure_logs_stream(js, settings.logs)
        publisher = LogPublisher(js)
        await publisher.start()
        service.state[LOG_PUBLISHER] = publisher
        service.state[NATS] = nc
        for sub in service.subscriptions(settings, store):
            consumer = EventConsumer(js, store, sub, batch=settings.consumer_batch)
            await consumer.start()
            consumers.append(consumer)
        if service.on_start:
            await service.on_start(settings, store)
        log.info("%s ready: %d consumers, %d command subjects", service.name, len(consumers), len(broker.subscribers))

    async def stop_consumers() -> None:
        await asyncio.gather(*(c.stop() for c in consumers))
        if service.on_stop:
            await service.on_stop()
        if (publisher := service.state.get(LOG_PUBLISHER)) is not None:
            await publisher.close()  # the last lines of the runs that just finished
        for nc in nc_holder:
            # close, not drain: draining waits out pending pull requests; anything not
            # acked is redelivered to another replica.
            await nc.close()
        store.close()

    @get
    async def health(scope: Any) -> AsgiResponse:
        return _json({"service": service.name, "status": "healthy"})

    @get
    async def ready(scope: Any) -> AsgiResponse:
        ok = bool(consumers or not service.subscriptions) and await broker.ping(timeout=1.0)
        return _json({"service": service.name, "ready": ok}, 200 if ok else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", ready), ("/metrics", make_asgi_app())],
        after_startup=[start_consumers],
        on_shutdown=[stop_consumers],
        logger=None,
    )


def _bytes_handler(subject: str, handler: CommandHandler) -> Callable[[Any], Awaitable[bytes]]:
    # Commands are raw msgspec JSON both ways: the handler decodes into its own Struct so a
    # malformed command becomes a typed error reply, not a framework exception.
    async def on_command(body: Any) -> bytes:
        raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
        try:
            reply = await handler(raw)
        except EventTooLarge as exc:
            COMMANDS.labels(subject, "refused").inc()
            return msgspec.json.encode(CommandReply(error=CommandError(413, exc.code, str(exc))))
        except Exception as exc:
            if outage(exc):
                # Not a bug: the caller is told to try again, as the edge's own reads are.
                log.warning("command %s: the database cannot serve it: %s: %s", subject, type(exc).__name__, exc)
                COMMANDS.labels(subject, "unavailable").inc()
                return msgspec.json.encode(CommandReply(error=CommandError(503, "service_unavailable", OUTAGE_MESSAGE)))
            # Answer anyway: a caller left waiting turns a bug into a timeout far away.
            log.exception("command failed")
            COMMANDS.labels(subject, "error").inc()
            return msgspec.json.encode(CommandReply(error=CommandError(500, "internal_error", "command failed")))
        COMMANDS.labels(subject, "ok").inc()
        return reply

    return on_command


def run(service: Service) -> None:
    settings = load_settings(service.name, service.default_port)
    setup_logging(service.name, settings.log_level)
    forbid_inspection()
    app = build_app(service, settings)
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning", loop="uvloop", lifespan="on"
    )
    log.info("%s listening on http://%s:%d", service.name, settings.http_host, settings.http_port)
    uvicorn.Server(config).run()
