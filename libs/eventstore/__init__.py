"""The PostgreSQL event store (eventsourcing + psycopg): one log, one global order."""
