"""The costs report (`GET /costs`): the workspace's charges (`rm_charges`) summed per task."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from libs.readmodels.task_view import ZERO_COST, add_charge


async def costs(pool: AsyncConnectionPool, workspace_id: str, since_ms: int | None) -> dict[str, Any]:
    """Per-task totals of the charges after `since_ms` (all when None), and their sum."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT task_id::text, sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
            "sum(cache_write_tokens), sum(cost_usd), sum(cpu_time_ms), sum(subrequests), bool_or(estimated), "
            "min(seq) FROM rm_charges WHERE workspace_id = %s AND occurred_at > %s GROUP BY task_id ORDER BY min(seq)",
            (workspace_id, since_ms if since_ms is not None else -1),
        )
        rows = await cur.fetchall()
    tasks, aggregate = [], dict(ZERO_COST)
    for task_id, tin, tout, cread, cwrite, usd, cpu, subreq, estimated, _ in rows:
        charge = {
            "input_tokens": int(tin),
            "output_tokens": int(tout),
            "cache_read_tokens": int(cread),
            "cache_write_tokens": int(cwrite),
            "cost_usd": float(usd),
            "cpu_time_ms": int(cpu),
            "subrequests": int(subreq),
            "estimated": bool(estimated),
        }
        cost = dict(ZERO_COST)
        add_charge(cost, charge)
        add_charge(aggregate, charge)
        tasks.append({"taskId": task_id, "cost": cost})
    return {"tasks": tasks, "aggregate": aggregate}
