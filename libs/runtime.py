"""How a bus worker service (planner, executor, review, cost-ledger) is wired and run.

One place: settings from the environment, the event store, the FastStream broker with the
service's command handlers, its durable event consumers, and an ops HTTP port with
`/health`, `/ready` and `/metrics`. Each service's `main.py` only names its parts, and builds
its own dependencies from what the runtime started for it (`Started`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import msgspec
import nats
import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.message import StreamMessage
from faststream.nats import NatsBroker
from nats.aio.client import Client as NatsClient
from prometheus_client import make_asgi_app

from contracts.commands import CommandError, CommandReply
from libs.bus.consumer import EventConsumer, InThread, Subscription
from libs.bus.jetstream import ensure_events_stream
from libs.config import Settings, load_settings
from libs.domain.errors import EventTooLarge
from libs.eventstore.store import EventStore
from libs.hardening import forbid_inspection
from libs.observability.logs import setup_logging
from libs.observability.metrics import COMMANDS
from libs.outage import OUTAGE_MESSAGE, outage

log = logging.getLogger(__name__)

CommandHandler = Callable[[bytes], Awaitable[bytes]]


@dataclass(frozen=True)
class Started:
    """What the runtime has set up for a service by the time the service's own parts are built.
    The runtime closes these when the service stops; the service closes what it opened itself."""

    settings: Settings
    store: EventStore
    nc: NatsClient  # the service's NATS connection (JetStream consumers, requests to other owners)


DepsT = TypeVar("DepsT")


@dataclass
class Service(Generic[DepsT]):
    """What a worker service is made of; `main.py` builds one and calls `run`.

    At start the runtime connects to NATS and starts the log publisher, then hands them
    (`Started`) to `wire`, which builds the service's own typed dependencies in one place. The
    other parts are handed what `wire` built: what the subscriptions use, `on_start` starts and
    `on_stop` closes is one object, kept by the runtime for that run of the service alone."""

    name: str
    default_port: int
    wire: Callable[[Started], DepsT]
    subscriptions: Callable[[DepsT], list[Subscription]]
    # Command subjects are subscribed before the broker starts, so before NATS is connected:
    # their handlers get the settings and the store only.
    commands: Callable[[Settings, EventStore], dict[str, CommandHandler]] = lambda s, e: {}
    on_start: Callable[[DepsT], Awaitable[None]] | None = None  # once its consumers have started
    on_stop: Callable[[DepsT], Awaitable[None]] | None = None  # before NATS and the log publisher close
    # Aggregates the store keeps between loads (EventStore's `kept`): for services whose
    # handlers reload the same aggregates step after step and never change one after saving it.
    kept_aggregates: int = 0
    # Commands of one subject handled at once by a replica: 1 answers them in order; a service
    # whose commands wait (on the database, on checks) takes more, each its own asyncio task.
    command_workers: int = 1


def batch_in_thread(handler: Callable[..., Sequence[Any]], *deps: Any) -> InThread:
    """A synchronous batch handler `(events, *deps)`, run off the event loop."""
    return InThread(handler, deps)


def command_in_thread(handler: Callable[..., msgspec.Struct], *deps: Any) -> CommandHandler:
    """A synchronous command handler `(raw, *deps) -> reply Struct`, run off the event loop."""

    async def handle(raw: bytes) -> bytes:
        return msgspec.json.encode(await asyncio.to_thread(handler, raw, *deps))

    return handle


def answer_commands(broker: NatsBroker, subject: str, queue: str, handler: CommandHandler, workers: int) -> None:
    """Registers `handler` as the answer to `subject`'s commands, in the owner's queue group
    (one replica answers each), before the broker starts."""
    subscriber = broker.subscriber(subject, queue=queue, decoder=_raw_body, max_workers=workers)
    subscriber(_bytes_handler(subject, handler))


def _json(body: object, status: int = 200) -> AsgiResponse:
    return AsgiResponse(msgspec.json.encode(body), status, headers={"content-type": "application/json"})


def build_app(service: Service[DepsT], settings: Settings) -> AsgiFastStream:
    store = EventStore(settings.database_url, kept=service.kept_aggregates)
    broker = NatsBroker(settings.nats_servers, logger=None)
    for subject, handler in service.commands(settings, store).items():
        answer_commands(broker, subject, service.name, handler, service.command_workers)

    consumers: list[EventConsumer] = []
    # What this run of the service started, for `stop_consumers` to close: none of it before
    # the broker has started.
    nc: NatsClient | None = None
    deps: DepsT | None = None

    async def start_consumers() -> None:
        nonlocal nc, deps
        nc = await nats.connect(settings.nats_servers, name=f"{service.name}-consumers")
        js = nc.jetstream()
        await ensure_events_stream(js, settings.events_stream_replicas)
        deps = service.wire(Started(settings, store, nc))
        for sub in service.subscriptions(deps):
            consumer = EventConsumer(js, store, sub, batch=settings.consumer_batch)
            await consumer.start()
            consumers.append(consumer)
        if service.on_start:
            await service.on_start(deps)
        log.info("%s ready: %d consumers, %d command subjects", service.name, len(consumers), len(broker.subscribers))

    async def stop_consumers() -> None:
        await asyncio.gather(*(c.stop() for c in consumers))
        if service.on_stop and deps is not None:
            await service.on_stop(deps)
        if nc is not None:
            # close, not drain: draining waits out pending pull requests; anything not
            # acked is redelivered to another replica.
            await nc.close()
        store.close()

    @get
    async def health(scope: Any) -> AsgiResponse:
        return _json({"service": service.name, "status": "healthy"})

    @get
    async def ready(scope: Any) -> AsgiResponse:
        ok = bool(consumers) and await broker.ping(timeout=1.0)
        return _json({"service": service.name, "ready": ok}, 200 if ok else 503)

    return AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", ready), ("/metrics", make_asgi_app())],
        after_startup=[start_consumers],
        on_shutdown=[stop_consumers],
        logger=None,
    )


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """A command's body as it came: FastStream's own decoder would `json.loads` a body sent
    without a content type (nats-py's requests, and FastStream's own for bytes) before the
    handler decodes it again, with msgspec, into its command Struct. A task's repository is
    megabytes: that first decode cost more than all the rest the planner does with it."""
    return message.body


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


def run(service: Service[Any]) -> None:
    settings = load_settings(service.name, service.default_port)
    setup_logging(service.name, settings.log_level)
    forbid_inspection()
    app = build_app(service, settings)
    config = uvicorn.Config(
        app, host=settings.http_host, port=settings.http_port, log_level="warning", loop="uvloop", lifespan="on"
    )
    log.info("%s listening on http://%s:%d", service.name, settings.http_host, settings.http_port)
    uvicorn.Server(config).run()
