"""Reads of the task rows (`rm_tasks`) for the HTTP services: a task's served state, its status,
a workspace's unfinished tasks."""

from __future__ import annotations

import functools
from typing import Any

from psycopg.sql import SQL, Identifier
from psycopg_pool import AsyncConnectionPool

from libs.readmodels.schema import TASK_STATE

_SELECT_STATE = f"SELECT {TASK_STATE} FROM rm_tasks WHERE task_id = %s AND workspace_id = %s".encode()


@functools.cache
def _select_task_column(column: str) -> bytes:
    # Rendered once per column: psycopg would render the composed query on every execute.
    if column == "state":
        return _SELECT_STATE
    return SQL("SELECT {} FROM rm_tasks WHERE task_id = %s AND workspace_id = %s").format(Identifier(column)).as_bytes()


async def _task_column(pool: AsyncConnectionPool, column: str, workspace_id: str, task_id: str) -> Any:
    async with pool.connection() as conn:
        cur = await conn.execute(_select_task_column(column), (task_id, workspace_id), prepare=True)
        row = await cur.fetchone()
    return row[0] if row else None


async def task_state(pool: AsyncConnectionPool, workspace_id: str, task_id: str) -> dict[str, Any] | None:
    return await _task_column(pool, "state", workspace_id, task_id)


async def task_status(pool: AsyncConnectionPool, workspace_id: str, task_id: str) -> str | None:
    """Only the status: the review check needs no full state (which carries the files)."""
    return await _task_column(pool, "status", workspace_id, task_id)


async def unfinished_tasks(pool: AsyncConnectionPool, workspace_id: str) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT task_id::text FROM rm_tasks WHERE workspace_id = %s "
            "AND status NOT IN ('completed', 'failed', 'cancelled') ORDER BY created_at, task_id",
            (workspace_id,),
        )
        return [r[0] for r in await cur.fetchall()]
