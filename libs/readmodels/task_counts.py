"""A workspace's tasks counted by status (`rm_tasks`), for summaries."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from contracts.tasks import TaskStatus


async def tasks_by_status(pool: AsyncConnectionPool, workspace_id: str) -> dict[str, int]:
    """Every status present, those without tasks at 0."""
    async with pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status, count(*) FROM rm_tasks WHERE workspace_id = %s GROUP BY status", (workspace_id,)
        )
        rows = await cursor.fetchall()
    counts = {status.value: 0 for status in TaskStatus}
    counts.update({status: int(count) for status, count in rows})
    return counts
