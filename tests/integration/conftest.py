"""Real PostgreSQL and NATS JetStream from the wheels, in temporary folders.

One PostgreSQL server per session with a fresh database per test (CREATE DATABASE, dropped
afterwards), one nats-server per module with the EVENTS stream created fresh for each test.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import psycopg
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg import sql

from contracts.subjects import EVENTS_STREAM
from libs.bus.jetstream import ensure_events_stream
from libs.devstack.nats import EmbeddedNats
from libs.devstack.postgres import EmbeddedPostgres
from libs.devstack.processes import free_port
from libs.eventstore.store import EventStore
from libs.readmodels import schema

# Durability is not what these tests are about; skipping fsync keeps CREATE DATABASE fast.
FAST_PG = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")), settings=FAST_PG)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A database of its own for each test, dropped (with any connection left) afterwards."""
    name = f"it_{uuid.uuid4().hex[:16]}"
    admin = pg_server.uri("postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_server.uri(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def store(postgres_url: str) -> Iterator[EventStore]:
    event_store = EventStore(postgres_url)
    try:
        yield event_store
    finally:
        event_store.close()


@pytest.fixture
def keeping_store(postgres_url: str) -> Iterator[EventStore]:
    """A store that keeps the aggregates it saved between loads, as the planner's and review's
    do (`kept_aggregates`); the other writers' events go through `store`."""
    event_store = EventStore(postgres_url, kept=1024)
    try:
        yield event_store
    finally:
        event_store.close()


@pytest.fixture
def read_models(postgres_url: str) -> None:
    """The read-model tables, created empty (the stream service or the gateway creates them in a
    running system); no projector runs unless a test runs one."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        schema.create(conn)


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("nats")), port=free_port(), monitor_port=free_port())
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NatsClient]:
    client = await nats.connect(nats_url, name="integration-tests")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    """A JetStream context on an EVENTS stream that starts empty (no messages, no consumers)."""
    context = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await context.delete_stream(EVENTS_STREAM)
    await ensure_events_stream(context)
    return context
