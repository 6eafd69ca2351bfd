"""The application recorder with per-consumer tracking written in the same transaction.

eventsourcing's process recorder tracks one position per application. Our consumers are
scaled out (replicas share a durable JetStream consumer), so a single high-water mark would
make a replica skip an older message another replica has not finished. We record every
handled `seq` instead: a redelivered message finds its row and changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.utils import retry
from psycopg import Cursor, InterfaceError, OperationalError
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

TRACKING_TABLE = "consumer_tracking"


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
        self._insert_tracking = SQL("INSERT INTO {0}.{1} (consumer, seq) SELECT %s, unnest(%s::bigint[])").format(
            schema, Identifier(TRACKING_TABLE)
        )
        # The base class sends these as three statements; as one simple query they cost one
        # round trip. The EXCLUSIVE lock makes commit order equal notification-id order.
        self._prelude = SQL("SET LOCAL lock_timeout = '{0}s'; LOCK TABLE {1}.{2} IN EXCLUSIVE MODE; NOTIFY {3}").format(
            SQL(str(self.datastore.lock_timeout)),
            schema,
            Identifier(self.events_table_name),
            Identifier(self.channel_name),
        )
        self._select_tracking = SQL("SELECT seq FROM {0}.{1} WHERE consumer = %s AND seq = ANY(%s)").format(
            schema, Identifier(TRACKING_TABLE)
        )
        self._select_positions = SQL(
            "SELECT consumer, max(seq) AS position, count(*) AS handled FROM {0}.{1} GROUP BY consumer"
        ).format(schema, Identifier(TRACKING_TABLE))

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        # Not in pipeline mode, unlike the base class: with libpq 18 a pipelined statement
        # with a large parameter (about 150 KB on a Unix socket) deadlocks, and it would do so
        # holding the events table's EXCLUSIVE lock, stopping every writer in the system.
        with self.datastore.transaction(commit=True) as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return []
            curs.execute(self._prelude)
            PostgresAggregateRecorder._insert_stored_events(self, curs, stored_events, **kwargs)
            return [row["notification_id"] for row in curs.fetchall()]

    def _insert_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        tracking: ConsumerTracking | None = kwargs.get("consumer_tracking")
        if tracking and tracking.seqs:
            # A duplicate raises IntegrityError and rolls back the whole batch with it.
            curs.execute(self._insert_tracking, (tracking.consumer, list(tracking.seqs)))

    def handled(self, consumer: str, seqs: Sequence[int]) -> set[int]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: one round trip
            curs.execute(self._select_tracking, (consumer, list(seqs)), prepare=True)
            return {row["seq"] for row in curs.fetchall()}

    def positions(self) -> dict[str, dict[str, int]]:
        with self.datastore.get_connection() as conn, conn.cursor() as curs:  # autocommit: one round trip
            curs.execute(self._select_positions)
            return {r["consumer"]: {"position": r["position"], "handled": r["handled"]} for r in curs.fetchall()}
