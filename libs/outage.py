"""Which database errors mean PostgreSQL cannot serve at the moment, rather than a bug.

An outage is answered "not now, try again" (503 with Retry-After) wherever it surfaces: a read at
the HTTP edge, or a command an owner could not carry out; a bug stays a 500 with its traceback.
"""

from __future__ import annotations

import psycopg

OUTAGE_MESSAGE = "the database cannot be reached at the moment; try again"
# SQLSTATE classes and codes that say the server cannot serve now, not that the request or the
# code is wrong: connection exceptions, insufficient resources (too many connections, disk,
# memory), shutdown or start-up in progress. (A connection refused, or to a database that is not
# there, fails before any SQLSTATE: psycopg raises an OperationalError without one.)
_OUTAGE_CLASSES = ("08", "53")
_OUTAGE_CODES = frozenset({"57P01", "57P02", "57P03"})


def outage(exc: BaseException) -> bool:
    """Whether a database error means PostgreSQL cannot serve at the moment (the client should
    try again), rather than a bug; the event store's errors are judged by the psycopg error
    they wrap. A read model's table missing counts: a rebuild drops and recreates them."""
    error = exc if isinstance(exc, psycopg.Error) else exc.__cause__
    if isinstance(error, psycopg.errors.UndefinedTable):
        return '"rm_' in str(error)
    if not isinstance(error, psycopg.OperationalError):
        return False
    # No SQLSTATE: the connection failed or broke (the pool's PoolTimeout is one of these).
    code = error.sqlstate
    return code is None or code[:2] in _OUTAGE_CLASSES or code in _OUTAGE_CODES
