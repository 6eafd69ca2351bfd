"""Drop every read model and rebuild it from the event log: `python -m libs.readmodels.rebuild`.

Takes the projector's advisory lock, so it refuses to run while a stream service is
projecting (stop the stream service first; it resumes from the rebuilt position).
"""

from __future__ import annotations

import logging
import os
import sys

import psycopg

from libs.eventstore.store import EventStore
from libs.readmodels import projector, schema

log = logging.getLogger("rebuild")


def rebuild(database_url: str) -> int:
    store = EventStore(database_url)
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (schema.PROJECTOR_LOCK,)).fetchone()
            if not (row and row[0]):
                raise SystemExit("a projector is running (stop the stream service first)")
            schema.drop(conn)
            schema.create(conn)
            return projector.catch_up(store, conn)
    finally:
        store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rebuild %(levelname)s: %(message)s")
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        sys.exit("DATABASE_URL is not set")
    position = rebuild(database_url)
    log.info("read models rebuilt up to seq %d", position)


if __name__ == "__main__":
    main()
