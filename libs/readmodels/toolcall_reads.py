"""Reads of the tool call log (`rm_tool_calls`): its filtered pages, and the calls after a seq
for the log's SSE stream. The rows' shape is in `toolcalls`."""

from __future__ import annotations

from typing import Any

from psycopg.rows import dict_row
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from libs.readmodels import toolcalls
from libs.readmodels.positions import snapshot
from libs.readmodels.toolcalls import ToolCallFilter


def _tool_call_conditions(workspace_id: str, only: ToolCallFilter) -> tuple[Composed, list[Any]]:
    conditions: list[Composable] = [SQL("workspace_id = %s")]
    params: list[Any] = [workspace_id]
    for column, value in (
        ("tool", only.tool),
        ("status", only.status),
        ("session_id", only.session_id),
        ("agent_name", only.agent_name),
    ):
        if value is not None:
            conditions.append(SQL("{} = %s").format(Identifier(column)))
            params.append(value)
    if only.since is not None:
        conditions.append(SQL("occurred_at >= %s"))
        params.append(only.since)
    if only.until is not None:
        conditions.append(SQL("occurred_at < %s"))
        params.append(only.until)
    return SQL(" AND ").join(conditions), params


_TOOL_CALL_COLUMNS = SQL(", ").join(Identifier(c) for c in toolcalls.COLUMNS)


async def tool_calls(
    pool: AsyncConnectionPool, workspace_id: str, only: ToolCallFilter, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the workspace's tool call log (newest first) and how many calls match in all."""
    where, params = _tool_call_conditions(workspace_id, only)
    async with pool.connection() as conn, conn.transaction():
        # One snapshot: the total and the page agree.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute(SQL("SELECT count(*) FROM rm_tool_calls WHERE {}").format(where), params)
        row = await cur.fetchone()
        total = int(row[0]) if row else 0
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            SQL("SELECT {} FROM rm_tool_calls WHERE {} ORDER BY seq DESC LIMIT %s OFFSET %s").format(
                _TOOL_CALL_COLUMNS, where
            ),
            [*params, limit, (page - 1) * limit],
        )
        rows = await cur.fetchall()
    return rows, total


async def tool_calls_after(
    pool: AsyncConnectionPool, workspace_id: str, after: int, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    """The workspace's tool calls after seq `after`, oldest first, and the projector position
    they are complete up to (like `feed`, for the log's stream)."""
    async with snapshot(pool) as (conn, position):
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            SQL("SELECT {} FROM rm_tool_calls WHERE workspace_id = %s AND seq > %s ORDER BY seq LIMIT %s").format(
                _TOOL_CALL_COLUMNS
            ),
            (workspace_id, after, limit),
        )
        rows = await cur.fetchall()
    return rows, position
