"""Read models: tables that only projections of the event log write, and their queries."""

import msgspec
from psycopg.types.json import set_json_dumps, set_json_loads

# Read models are JSON documents: let msgspec (de)serialize jsonb, for every connection.
set_json_dumps(msgspec.json.encode)
set_json_loads(msgspec.json.decode)
