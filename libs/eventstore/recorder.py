"""The application recorder with per-consumer tracking written in the same transaction.

eventsourcing's process recorder tracks one position per application. Our consumers are
scaled out (replicas share a durable JetStream consumer), so a single high-water mark would
make a replica skip an older message another replica has not finished. We record every
handled `seq` instead: a redelivered message finds its row and changes nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

import msgspec
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg.sql import SQL, Identifier
from psycopg_pool import PoolTimeout

from libs.domain.errors import EventTooLarge
from libs.eventstore.blobs import BLOBS_TABLE, Blob

P = ParamSpec("P")
R = TypeVar("R")
TRACKING_TABLE = "consumer_tracking"
APPEND_FUNCTION = "orchestrator_append"
# Events never copy file contents (files are blobs, named by digest), so an event is small: what
# people write is bounded (a description, feedback, an answer: 64 Ki characters each; a plan quotes
# the description twice) and a map of files costs about 100 bytes a file. Far below a bus message,
# so every event is published whole; a larger one is refused at append (EventTooLarge).
MAX_EVENT_BYTES = 1024 * 1024
# The append function's arguments before blobs were stored apart: dropped, so no overload lingers.
OLD_APPEND_ARGS = "text, bigint[], {id_type}[], bigint[], text[], bytea[]"


RECONNECT_ATTEMPTS = 10
RECONNECT_WAIT_S = 0.2


def reconnecting(statement: Callable[P, R]) -> Callable[P, R]:
    """Around every read and write here: a pooled connection PostgreSQL ended (a restart) fails
    at its next use and the pool drops it, so the statement goes again on another, as
    eventsourcing's own statements do. A wait for a connection that timed out (the pool could
    not reach the server for `POSTGRES_CONNECT_TIMEOUT`) is not tried again: the caller answers
    it as an outage (503, try again) in time, not minutes later."""

    @functools.wraps(statement)
    def again(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(1, RECONNECT_ATTEMPTS + 1):
            try:
                return statement(*args, **kwargs)
            except (InterfaceError, OperationalError) as exc:
                if isinstance(exc.__cause__, PoolTimeout) or attempt == RECONNECT_ATTEMPTS:
                    raise
                time.sleep(RECONNECT_WAIT_S)
        raise AssertionError("unreachable")

    return again


class ConsumerTracking(msgspec.Struct, frozen=True):
    consumer: str
    seqs: list[int]


class TrackingApplicationRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        schema = Identifier(self.datastore.schema)
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "consumer text NOT NULL, seq bigint NOT NULL, PRIMARY KEY (consumer, seq))"
            ).format(schema, Identifier(TRACKING_TABLE))
        )
        # Files by digest (`libs.eventstore.blobs`): written once per workspace and content.
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {0}.{1} ("
                "workspace_id text NOT NULL, digest text NOT NULL, size bigint NOT NULL, content bytea NOT NULL, "
                "PRIMARY KEY (workspace_id, digest))"
            ).format(schema, Identifier(BLOBS_TABLE))
        )
        self.sql_create_statements.append(
            SQL("DROP FUNCTION IF EXISTS {0}.{1}(" + OLD_APPEND_ARGS + ")").format(
                schema, Identifier(APPEND_FUNCTION), id_type=Identifier(self.datastore.originator_id_type)
            )
        )
        # One call appends a batch: the tracking rows and the blobs its events name first, then,
        # if there are events (holding the EXCLUSIVE lock that makes commit order equal
        # notification-id order), the events and the NOTIFY; tracking rows and blobs take no
        # lock, so a large repository is written before the lock every writer queues on. Called
        # as the only statement on an autocommit connection, it commits in the same round trip,
        # so the lock is held for the server's work and the commit's WAL flush only, never for
        # a client round trip (a busy client thread waiting for the GIL while holding it stalls
        # every other writer). A blob already stored (the same content, named again) is left as it is.
        self.sql_create_statements.append(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{append}("
                "p_consumer text, p_seqs bigint[], "
                "p_ids {id_type}[], p_versions bigint[], p_topics text[], p_states bytea[], "
                "p_blob_workspaces text[], p_blob_digests text[], p_blob_sizes bigint[], p_blob_contents bytea[]) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $BODY$ "
                "BEGIN "
                "  IF p_consumer IS NOT NULL THEN "
                "    INSERT INTO {schema}.{tracking} (consumer, seq) SELECT p_consumer, unnest(p_seqs); "
                "  END IF; "
                "  IF cardinality(p_blob_digests) > 0 THEN "
                "    INSERT INTO {schema}.{blobs} (workspace_id, digest, size, content) "
                "      SELECT * FROM unnest(p_blob_workspaces, p_blob_digests, p_blob_sizes, p_blob_contents) "
                "      ON CONFLICT DO NOTHING; "
                "  END IF; "
                "  IF cardinality(p_ids) > 0 THEN "
                "    SET LOCAL lock_timeout = '{lock_timeout}s'; "
                "    LOCK TABLE {schema}.{table} IN EXCLUSIVE MODE; "
                "    NOTIFY {channel}; "
                "    RETURN QUERY INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                "      SELECT * FROM unnest(p_ids, p_versions, p_topics, p_states) "
                "      RETURNING notification_id; "
                "  END IF; "
                "END; $BODY$"
            ).format(
                schema=schema,
                append=Identifier(APPEND_FUNCTION),
                id_type=Identifier(self.datastore.originator_id_type),
                tracking=Identifier(TRACKING_TABLE),
                blobs=Identifier(BLOBS_TABLE),
                lock_timeout=SQL(str(self.datastore.lock_timeout)),
                table=Identifier(self.events_table_name),
                channel=Identifier(self.channel_name),
            )
        )
        # The statements of every append and look-up, rendered to bytes once: psycopg renders a
        # composed query (escaping each identifier through libpq) on every execute, which cost
        # more CPU than the rest of the call on the client's side.
        self._append = (
            SQL(
                "SELECT * FROM {0}.{1}(%s::text, %s::bigint[], %s::{2}[], %s::bigint[], %s::text[], %s::bytea[], "
                "%s::text[], %s::text[], %s::bigint[], %s::bytea[])"
            )
            .format(schema, Identifier(APPEND_FUNCTION), Identifier(self.datastore.originator_id_type))
            .as_bytes()
        )
        self._select_tracking = (
            SQL("SELECT seq FROM {0}.{1} WHERE consumer = %s AND seq = ANY(%s)")
            .format(schema, Identifier(TRACKING_TABLE))
            .as_bytes()
        )
        self._select_positions = (
            SQL("SELECT consumer, max(seq) AS position, count(*) AS handled FROM {0}.{1} GROUP BY consumer")
            .format(schema, Identifier(TRACKING_TABLE))
            .as_bytes()
        )

    @reconnecting
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        tracking: ConsumerTracking | None = kwargs.get("consumer_tracking")
        if tracking is not None and not tracking.seqs:
            tracking = None
        blobs: Sequence[Blob] = kwargs.get("blobs") or ()
        if not stored_events and tracking is None and not blobs:
            return []
        for event in stored_events:
            if len(event.state) > MAX_EVENT_BYTES:
                raise EventTooLarge(
                    f"an event of {len(event.state)} bytes is larger than the {MAX_EVENT_BYTES} an event may be"
                )
        # Four plain arrays rather than one of a composite type: psycopg dumps a composite field
        # by field in Python, an array of a plain type in C.
        events = (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        )
        stored = (
            [b.workspace_id for b in blobs],
            [b.digest for b in blobs],
            [b.size for b in blobs],
            [b.content for b in blobs],
        )
        # A duplicate tracking row or event version raises IntegrityError: nothing is written.
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: commits with the call
            curs.execute(
                self._append,
                (tracking.consumer if tracking else None, list(tracking.seqs) if tracking else None, *events, *stored),
                prepare=True,
            )
            return [row[APPEND_FUNCTION] for row in curs.fetchall()]

    @reconnecting
    def handled(self, consumer: str, seqs: Sequence[int]) -> set[int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: one round trip
            curs.execute(self._select_tracking, (consumer, list(seqs)), prepare=True)
            return {row["seq"] for row in curs.fetchall()}

    @reconnecting
    def positions(self) -> dict[str, dict[str, int]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: one round trip
            curs.execute(self._select_positions)
            return {r["consumer"]: {"position": r["position"], "handled": r["handled"]} for r in curs.fetchall()}
