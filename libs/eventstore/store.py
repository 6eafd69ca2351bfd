"""EventStore: load and save aggregates in batches, and read the log as wire envelopes.

Built on eventsourcing's Application (mapper, transcoder, PostgreSQL recorder). Every
service's application has the same name, so all aggregates share one events table and one
notification sequence: that sequence is the public `seq`. Each event is stored as flat JSON, its
envelope fields beside its payload's (`libs.eventstore.mapper`).
"""

from __future__ import annotations

import collections
import functools
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from contracts.events import EventEnvelope
from libs.domain.base import ENVELOPE_FIELDS, EventTypes
from libs.eventstore.blobs import Blob, BlobStore, carried, carry_done
from libs.eventstore.mapper import PayloadMapper
from libs.eventstore.recorder import ConsumerTracking, TrackingApplicationRecorder, reconnecting
from libs.eventstore.transcoder import MsgspecTranscoder

EVENTS_TABLE = "orchestrator_events"
# eventsourcing NOTIFYs a channel named for the table inside each appending transaction.
EVENTS_CHANNEL = EVENTS_TABLE
SCHEMA_LOCK = 4242


class OrchestratorApplication(Application[UUID]):
    name = "orchestrator"

    def construct_mapper(self) -> Mapper[UUID]:
        # The domain's events hold one payload Struct, stored flat (`PayloadMapper`); the
        # transcoder is for anything else eventsourcing might store.
        return self.factory.mapper(transcoder=self.construct_transcoder(), mapper_class=PayloadMapper)

    def construct_transcoder(self) -> Transcoder:
        return MsgspecTranscoder()


def eventsourcing_env(database_url: str, pool_size: int = 4) -> dict[str, str]:
    params = conninfo_to_dict(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "APPLICATION_RECORDER_TOPIC": "libs.eventstore.recorder:TrackingApplicationRecorder",
        "POSTGRES_DBNAME": str(params.get("dbname", "orchestrator")),
        "POSTGRES_HOST": str(params.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(params.get("port", "5432")),
        "POSTGRES_USER": str(params.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(params.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_LOCK_TIMEOUT": "5",
        # How long a statement waits for a pooled connection (eventsourcing's default is 30 s):
        # while PostgreSQL is away a command is answered 503 well within the gateway's wait.
        "POSTGRES_CONNECT_TIMEOUT": "5",
    }


class EventStore:
    """`kept` > 0 keeps up to that many saved aggregates between loads (see `load_many`): only
    for callers that never change an aggregate after saving it. An aggregate whose `settled` is
    true is not kept."""

    def __init__(self, database_url: str, pool_size: int = 4, kept: int = 0) -> None:
        # Services start together and each creates the tables if missing; PostgreSQL's DDL
        # is not safe to race (CREATE TYPE IF NOT EXISTS can still collide), so take turns.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                self.app = OrchestratorApplication(env=eventsourcing_env(database_url, pool_size))
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
        recorder = self.app.recorder
        assert isinstance(recorder, TrackingApplicationRecorder)
        self.recorder = recorder
        events = SQL("{0}.{1}").format(Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))

        def rendered(statement: str) -> bytes:
            return SQL(statement).format(events=events).as_bytes()

        # Statements rendered to bytes once, as the recorder's are. Each aggregate's events after
        # the version the caller holds (0: all of them); `= ANY` keeps the primary key's index
        # scan in the prepared statement's generic plan, which a join to the arrays does not:
        # planned while the table was small, it went on scanning the whole table as the log grew.
        self._select_many = rendered(
            "SELECT originator_id, originator_version, topic, state FROM {events} "
            "WHERE originator_id = ANY(%(ids)s::uuid[]) "
            "AND originator_version > (%(versions)s::bigint[])[array_position(%(ids)s::uuid[], originator_id)] "
            "ORDER BY originator_id, originator_version"
        )
        log_columns = "SELECT notification_id, originator_id, originator_version, topic, state FROM {events} "
        self._select_log = rendered(
            log_columns + "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s"
        )
        # `= ANY` on the primary key's leading column: an index scan however long the log.
        self._select_log_of_aggregates = rendered(
            log_columns + "WHERE originator_id = ANY(%s::uuid[]) AND notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        )
        self._select_log_of = rendered(
            log_columns + "WHERE notification_id > %s AND topic = %s ORDER BY notification_id LIMIT %s"
        )
        self.blobs = BlobStore(recorder.datastore)
        self._kept: collections.OrderedDict[UUID, Any] = collections.OrderedDict()
        self._kept_limit = kept
        self._kept_lock = threading.Lock()

    def close(self) -> None:
        self.app.close()

    # --- aggregates ----------------------------------------------------------------------

    def load_many(self, ids: Iterable[UUID]) -> dict[UUID, Any]:
        """Every requested aggregate that exists, as of now, in one query.

        With `kept`, an aggregate this store saved before comes back as that object brought up
        to date with only the events appended since (by anyone): the planner reloads a task at
        each step of its life, and rebuilding it from all its events each time cost more than
        the step. A kept aggregate is handed out once: it returns to the store only when it is
        saved again, so two threads never share one, and one a handler changed and then gave up
        on (an error, a conflict) is rebuilt from the log next time.
        """
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        aggregates: dict[UUID, Any] = self._take_kept(wanted) if self._kept_limit else {}
        versions = [aggregates[i].version if i in aggregates else 0 for i in wanted]
        for row in self._events_after(wanted, versions):
            event = self.app.mapper.to_domain_event(
                StoredEvent(
                    originator_id=row["originator_id"],
                    originator_version=row["originator_version"],
                    topic=row["topic"],
                    state=bytes(row["state"]),
                )
            )
            aggregates[row["originator_id"]] = event.mutate(aggregates.get(row["originator_id"]))
        return aggregates

    def load(self, aggregate_id: UUID) -> Any | None:
        """One aggregate, as of now (`load_many` of one), or None when it does not exist."""
        return self.load_many([aggregate_id]).get(aggregate_id)

    @reconnecting
    def _events_after(self, ids: list[UUID], versions: list[int]) -> list[Any]:
        # One statement on an autocommit connection: no BEGIN / ROLLBACK round trips.
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute(self._select_many, {"ids": ids, "versions": versions}, prepare=True)
            return curs.fetchall()

    def save(
        self, aggregates: Iterable[Aggregate], tracking: ConsumerTracking | None = None, blobs: Sequence[Blob] = ()
    ) -> int:
        """Appends all pending events (and the tracking rows, and the blobs their events name:
        `blobs`, and those the aggregates carry) in one transaction.

        Returns the highest `seq` written, or 0 when there was nothing to append.
        """
        aggregates = list(aggregates)
        blobs = [*blobs, *carried(aggregates)]
        unstored = self.blobs.unstored(blobs) if blobs else []
        recordings = self.app.save(*aggregates, consumer_tracking=tracking, blobs=unstored)
        carry_done(aggregates)
        self.blobs.remember(blobs)  # what this process wrote, it may well read next (a run's outputs: its PR)
        if self._kept_limit:
            self._keep(aggregates)
        return max((r.notification.id for r in recordings), default=0)

    def _take_kept(self, ids: list[UUID]) -> dict[UUID, Any]:
        with self._kept_lock:
            return {i: self._kept.pop(i) for i in ids if i in self._kept}

    def _keep(self, aggregates: list[Any]) -> None:
        with self._kept_lock:
            for aggregate in aggregates:
                if not isinstance(aggregate, Aggregate):
                    continue  # a bare event (`save` takes those too) is no aggregate to keep
                if getattr(aggregate, "settled", False):
                    # Ended for good (a finished task): seldom loaded again, and it can be large
                    # (a task holds its repository's files), so the kept ones are the live ones.
                    self._kept.pop(aggregate.id, None)
                    continue
                self._kept[aggregate.id] = aggregate
                self._kept.move_to_end(aggregate.id)
            while len(self._kept) > self._kept_limit:
                self._kept.popitem(last=False)

    def handled(self, consumer: str, seqs: Sequence[int]) -> set[int]:
        return self.recorder.handled(consumer, seqs) if seqs else set()

    def consumer_positions(self) -> dict[str, dict[str, int]]:
        return self.recorder.positions()

    # --- the log --------------------------------------------------------------------------

    def head(self) -> int:
        return self.recorder.max_notification_id() or 0

    @reconnecting
    def read(self, after: int, limit: int = 1000, stop: int | None = None) -> list[EventEnvelope]:
        """The log after `after` (up to `stop`), as envelopes. Every follower of the log reads
        through here, so it takes plain tuples, not eventsourcing's Notification objects."""
        with self.recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_log, (after, stop if stop is not None else 2**63 - 1, limit), prepare=True)
            rows = curs.fetchall()
        return [_envelope(*row) for row in rows]

    @reconnecting
    def read_of(self, event_class: type, after: int, limit: int = 1000) -> list[EventEnvelope]:
        """The log's events of one class after `after`: PostgreSQL passes over the others, so
        they are never sent or decoded (the rest of the log can hold whole repositories)."""
        with self.recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_log_of, (after, get_topic(event_class), limit), prepare=True)
            rows = curs.fetchall()
        return [_envelope(*row) for row in rows]

    @reconnecting
    def read_aggregates(self, ids: Sequence[UUID], after: int, limit: int = 1000) -> list[EventEnvelope]:
        """The events of these aggregates after seq `after`, in the log's order: one run's story
        (spec 004's streamed runs) read without passing over the rest of the log."""
        with self.recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as curs:
            curs.execute(self._select_log_of_aggregates, (list(ids), after, limit), prepare=True)
            rows = curs.fetchall()
        return [_envelope(*row) for row in rows]


def _envelope(seq: int, originator_id: UUID, version: int, topic: str, state_bytes: bytes) -> EventEnvelope:
    # Straight from the stored JSON, without building the domain event object.
    state = _state_decoder.decode(state_bytes)
    return EventEnvelope(
        seq=seq,
        type=_event_type(topic),
        workspace_id=state["workspace_id"],
        aggregate_id=str(originator_id),
        version=version,
        occurred_at=int(datetime.fromisoformat(state["timestamp"]).timestamp() * 1000),
        # The same split as the domain's `event_payload`: envelope fields out, the rest is payload.
        payload={k: v for k, v in state.items() if k not in ENVELOPE_FIELDS},
    )


_state_decoder = msgspec.json.Decoder(dict[str, Any])


@functools.cache
def _event_type(topic: str) -> str:
    return EventTypes.name(resolve_topic(topic))
