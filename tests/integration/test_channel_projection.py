"""Coordination channels' read models on a real PostgreSQL: what the projector writes from the
Channel aggregate's events however the log is cut into batches (a purge among them), the notice
that wakes a waiting `recv`, and the session cursors `recv` and the inbox read."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

from libs.domain.channel import Channel, parse_name
from libs.domain.workspace import Workspace
from libs.eventstore.store import EventStore
from libs.readmodels import channel_reads, projector, schema
from libs.readmodels.channels import MESSAGES_CHANNEL, TABLES

pytestmark = pytest.mark.integration

WS, OTHER = "ws-channels", "ws-channels-2"
ASKER, HELPER = "session-asker", "session-helper"


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


@pytest.fixture
async def pool(postgres_url: str, conn: psycopg.Connection) -> AsyncIterator[AsyncConnectionPool]:
    async with AsyncConnectionPool(postgres_url, min_size=1, max_size=4, kwargs={"autocommit": True}) as opened:
        yield opened


def talk(store: EventStore, workspace_id: str, messages: int) -> Channel:
    task_id = str(uuid.uuid4())
    name = parse_name(f"task_{task_id}")
    assert name is not None
    channel = Channel.open(workspace_id, name, task_id, ASKER)
    asked = channel.send(ASKER, "question", {"q": "which?"}, {})
    store.save([channel])
    channel.send(HELPER, "answer", "this one", {}, reply_to=asked.message_id)
    for n in range(messages - 2):
        channel.send(ASKER if n % 2 else HELPER, "status", n, {})
    store.save([channel])
    return channel


def rows(conn: psycopg.Connection) -> dict[str, list[str]]:
    return {table: [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1")] for table in TABLES}


def test_any_cut_of_the_log_into_batches_projects_the_same_rows(
    store: EventStore, conn: psycopg.Connection, postgres_url: str
) -> None:
    workspace = Workspace.create(WS, "talkers")
    store.save([workspace, Workspace.create(OTHER, "others")])
    talk(store, WS, 4)
    kept = talk(store, OTHER, 3)
    workspace.purge(["todos"], [], [])
    store.save([workspace])
    after = talk(store, WS, 2)
    kept.send(ASKER, "note", "after the other's purge", {})
    store.save([kept])

    # Event by event, as a projector that is kept busy would...
    position = 0
    for event in store.read(0, 10_000):
        with conn.transaction():
            position = projector.project(conn, [event], expected=position)
    one_by_one = rows(conn)
    # ...and the whole log in one batch, as a rebuild does.
    schema.drop(conn)
    schema.create(conn)
    projector.catch_up(store, conn)

    assert rows(conn) == one_by_one
    channels = conn.execute("SELECT workspace_id, channel, messages FROM rm_channels ORDER BY 1").fetchall()
    assert channels == [(WS, after.name, 2), (OTHER, kept.name, 4)], "the purge took the workspace's earlier ones"
    assert conn.execute("SELECT count(*) FROM rm_channel_messages WHERE workspace_id = %s", (WS,)).fetchone() == (2,)


def test_the_projector_notifies_the_channels_it_wrote_messages_to(store: EventStore, postgres_url: str) -> None:
    with (
        psycopg.connect(postgres_url, autocommit=True) as listener,
        psycopg.connect(postgres_url, autocommit=True) as writer,
    ):
        schema.create(writer)
        listener.execute(f'LISTEN "{MESSAGES_CHANNEL}"')
        first, second = talk(store, WS, 2), talk(store, WS, 2)

        projector.catch_up(store, writer)

        notices = [n.payload for n in listener.notifies(timeout=2, stop_after=1)]
    assert notices == [",".join(sorted((str(first.id), str(second.id))))]


async def test_recv_moves_the_sessions_cursor_past_others_messages(
    store: EventStore, conn: psycopg.Connection, pool: AsyncConnectionPool
) -> None:
    channel = talk(store, WS, 6)  # asker, helper, then helper and asker in turn
    projector.catch_up(store, conn)
    key = str(channel.id)

    unread = (await channel_reads.inbox(pool, HELPER, WS, 50))[1]
    first = await channel_reads.receive(pool, HELPER, WS, key, 2)
    rest = await channel_reads.receive(pool, HELPER, WS, key, 50)

    assert unread == 3, "the asker's three, not its own"
    assert [r.from_session_id for r in first + rest] == [ASKER] * 3
    assert [r.message_id for r in first + rest] == sorted((r.message_id for r in first + rest), key=_number)
    assert await channel_reads.receive(pool, HELPER, WS, key, 50) == []
    assert (await channel_reads.inbox(pool, HELPER, WS, 50))[1] == 0
    assert (await channel_reads.inbox(pool, ASKER, WS, 50))[1] == 3, "another session's cursor is its own"
    assert (await channel_reads.inbox(pool, ASKER, OTHER, 50))[1] == 0


async def test_two_recvs_of_one_session_at_once_never_return_one_message_twice(
    store: EventStore, conn: psycopg.Connection, pool: AsyncConnectionPool
) -> None:
    channel = talk(store, WS, 40)
    projector.catch_up(store, conn)

    got = await asyncio.gather(*(channel_reads.receive(pool, "reader", WS, str(channel.id), 3) for _ in range(8)))
    while any(got[-8:]):
        got += await asyncio.gather(*(channel_reads.receive(pool, "reader", WS, str(channel.id), 3) for _ in range(8)))

    ids = [r.message_id for batch in got for r in batch]
    assert len(ids) == len(set(ids)) == 40


def _number(message_id: str) -> int:
    return int(message_id.rsplit(":", 1)[1])
