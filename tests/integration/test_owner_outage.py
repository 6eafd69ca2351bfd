"""An aggregate's owner while PostgreSQL restarts or is away: its store reads again on a new
connection when a pooled one was ended, and a command it cannot carry out for want of the
database is answered 503 (try again), as the gateway's own reads are, never 500."""

from __future__ import annotations

import uuid

import msgspec
import psycopg
import pytest

from contracts.commands import CommandError, CommandReply, DecideReviewCommand
from libs.domain.gate import Gate, review_gate_id
from libs.eventstore.store import EventStore
from libs.runtime import _bytes_handler, command_in_thread
from services.review.handlers import decide
from tests.integration.test_database_away import drop_database

pytestmark = pytest.mark.integration


def end_other_sessions(postgres_url: str) -> None:
    """What a PostgreSQL restart does to a service's pooled connections: each is ended."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def open_review(store: EventStore) -> str:
    task_id = str(uuid.uuid4())
    store.save([Gate.open_review("default", task_id)])
    return task_id


def test_reads_after_postgresql_ended_the_pooled_connections_go_on_new_ones(
    store: EventStore, postgres_url: str
) -> None:
    task_id = open_review(store)
    gate_id = review_gate_id(task_id)
    assert gate_id in store.load_many([gate_id])  # the pool's connections are open and used
    head = store.head()

    end_other_sessions(postgres_url)

    assert gate_id in store.load_many([gate_id])
    assert [e.seq for e in store.read(0)][-1] == head
    assert store.handled("review", [head]) == set()


async def test_a_review_decided_while_the_database_is_away_is_a_503_to_try_again(
    store: EventStore, postgres_url: str
) -> None:
    task_id = open_review(store)
    handler = _bytes_handler("cmd.review.decide", command_in_thread(decide, store))
    drop_database(postgres_url)

    answer = await handler(msgspec.json.encode(DecideReviewCommand("default", task_id, "approve")))

    assert msgspec.json.decode(answer, type=CommandReply).error == CommandError(
        503, "service_unavailable", "the database cannot be reached at the moment; try again"
    )
