"""Reads of the tasks' live logs (`rm_task_log`), for the logs WebSocket."""

from __future__ import annotations

import msgspec
from psycopg_pool import AsyncConnectionPool

from contracts.logs import LogEntry
from libs.readmodels.positions import snapshot

# (seq of the event, the line): the seq is where a reader stands in the log.
_decoder = msgspec.json.Decoder(list[tuple[int, LogEntry]])


async def task_log(
    pool: AsyncConnectionPool, workspace_id: str, task_id: str, after: int = 0
) -> tuple[list[tuple[int, LogEntry]], int]:
    """The task's lines whose events come after seq `after`, in log order, each with its event's
    seq, and the projector position they are complete up to (one snapshot)."""
    async with snapshot(pool) as (conn, position):
        # One JSON document for all the lines: decoded at once by msgspec, not row by row.
        cur = await conn.execute(
            "SELECT coalesce(json_agg(json_build_array(seq, entry) ORDER BY seq, ordinal), '[]')::text "
            "FROM rm_task_log WHERE task_id = %s AND workspace_id = %s AND seq > %s",
            (task_id, workspace_id, after),
        )
        row = await cur.fetchone()
    return _decoder.decode(row[0] if row else "[]"), position
