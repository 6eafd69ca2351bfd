"""Which database errors are an outage (503, try again) and which are a bug (500)."""

from __future__ import annotations

import eventsourcing.persistence
import psycopg
import psycopg_pool
import pytest

from libs.outage import outage


def wrapped(error: psycopg.Error) -> eventsourcing.persistence.PersistenceError:
    """As the event store raises it: eventsourcing's error, the psycopg one as its cause."""
    try:
        try:
            raise error
        except psycopg.Error as e:
            raise eventsourcing.persistence.OperationalError(str(e)) from e
    except eventsourcing.persistence.OperationalError as outer:
        return outer


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.CannotConnectNow("the database system is starting up"),
        psycopg.errors.TooManyConnections("sorry, too many clients already"),
        psycopg.errors.UndefinedTable('relation "rm_api_keys" does not exist'),  # mid-rebuild
        wrapped(psycopg.OperationalError("connection failed")),
    ],
    ids=repr,
)
def test_an_outage_is_one(error: Exception) -> None:
    assert outage(error)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
        psycopg.errors.UndefinedTable('relation "orchestrator_event" does not exist'),
        psycopg.errors.UndefinedColumn('column "stauts" does not exist'),
        psycopg.errors.UniqueViolation("duplicate key value"),
        psycopg.errors.SyntaxError("syntax error at or near"),
        eventsourcing.persistence.IntegrityError("a conflict"),
        wrapped(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")),
    ],
    ids=repr,
)
def test_a_bug_or_a_bad_statement_is_not_an_outage(error: Exception) -> None:
    assert not outage(error)
