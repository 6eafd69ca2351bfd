"""Reads of spec 003's tasks family: a workspace's tasks a page at a time and one task's summary
(`rm_tasks`), and the feed of their status changes (`rm_task_history`).

Pages are keyset pages: each starts after the last item of the one before (its `created_at` and
id, or its seq), so an item added meanwhile neither repeats nor shifts what follows, and a page
costs the same however deep it is.
"""

from __future__ import annotations

from typing import Any

import msgspec
from psycopg.sql import SQL, Composable
from psycopg_pool import AsyncConnectionPool

# A row from before `rm_tasks.request` existed keeps its request in `state` (`schema.TASK_STATE`).
_REQUEST = "coalesce(request, state->'request')"
# The request without its files and the state without the parts a summary does not show: a
# repository's file map can be large, and a list never needs it.
_SUMMARY = SQL(
    "SELECT task_id::text, status, created_at, updated_at, "
    f"{_REQUEST} #- '{{repo,files}}', state - 'results' - 'subtasks' - 'request' FROM rm_tasks"
)


class TaskFilter(msgspec.Struct, frozen=True):
    statuses: list[str] | None = None
    repository: tuple[str, str] | None = None  # owner and name, matched as GitHub does: any case
    agent_type: str | None = None
    since: int | None = None  # epoch ms: tasks submitted at or after it


def summary_of(row: tuple[Any, ...]) -> dict[str, Any]:
    """A row of `_SUMMARY` as spec 003's `TaskSummary` (camelCase, every field present)."""
    task_id, status, created_at, updated_at, request, state = row
    repo = request.get("repo") or {}
    return {
        "id": task_id,
        "status": status,
        "agentType": request.get("agentType"),
        "description": request.get("description", ""),
        "repo": {k: repo.get(k, "") for k in ("owner", "repo", "branch", "baseBranch")},
        "queuedAt": created_at,
        "startedAt": state.get("startedAt"),
        "completedAt": state.get("completedAt"),
        "updatedAt": updated_at,
        "error": state.get("error") if status in ("failed", "cancelled") else None,
        "prUrl": state.get("prUrl"),
        "cost": state.get("cost"),
        "parentTaskId": request.get("parentTaskId"),
        **{k: state.get(k) for k in ("revisionOf", "revisedBy", "retryOf", "retriedBy")},
    }


async def task_summary(pool: AsyncConnectionPool, workspace_id: str, task_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(_SUMMARY + SQL(" WHERE task_id = %s AND workspace_id = %s"), (task_id, workspace_id))
        row = await cur.fetchone()
    return summary_of(row) if row else None


async def tasks(
    pool: AsyncConnectionPool, workspace_id: str, only: TaskFilter, after: tuple[int, str] | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` of the workspace's tasks that match, newest first, after `after` (the
    `created_at` and id of the last one already seen)."""
    conditions: list[Composable] = [SQL("workspace_id = %s")]
    params: list[Any] = [workspace_id]
    if only.statuses:
        conditions.append(SQL("status = ANY(%s)"))
        params.append(only.statuses)
    if only.agent_type is not None:
        conditions.append(SQL(f"{_REQUEST}->>'agentType' = %s"))
        params.append(only.agent_type)
    if only.repository is not None:
        conditions.append(
            SQL(f"lower({_REQUEST}->'repo'->>'owner') = lower(%s) AND lower({_REQUEST}->'repo'->>'repo') = lower(%s)")
        )
        params.extend(only.repository)
    if only.since is not None:
        conditions.append(SQL("created_at >= %s"))
        params.append(only.since)
    if after is not None:
        conditions.append(SQL("(created_at, task_id) < (%s, %s::uuid)"))
        params.extend(after)
    query = _SUMMARY + SQL(" WHERE {} ORDER BY created_at DESC, task_id DESC LIMIT %s").format(
        SQL(" AND ").join(conditions)
    )
    async with pool.connection() as conn:
        cur = await conn.execute(query, [*params, limit])
        rows = await cur.fetchall()
    return [summary_of(r) for r in rows]


_HISTORY_COLUMNS = (
    "seq",
    "taskId",
    "status",
    "previousStatus",
    "occurredAt",
    "queuedAt",
    "startedAt",
    "completedAt",
    "error",
)


async def history(
    pool: AsyncConnectionPool, workspace_id: str, task_id: str | None, before: int | None, limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` of the workspace's transitions (of one task, when `task_id` is given),
    newest first, before seq `before`."""
    conditions: list[Composable] = [SQL("workspace_id = %s")]
    params: list[Any] = [workspace_id]
    if task_id is not None:
        conditions.append(SQL("task_id = %s::uuid"))
        params.append(task_id)
    if before is not None:
        conditions.append(SQL("seq < %s"))
        params.append(before)
    query = SQL(
        "SELECT seq, task_id::text, status, previous_status, occurred_at, queued_at, started_at, completed_at, "
        "error FROM rm_task_history WHERE {} ORDER BY seq DESC LIMIT %s"
    ).format(SQL(" AND ").join(conditions))
    async with pool.connection() as conn:
        cur = await conn.execute(query, [*params, limit])
        rows = await cur.fetchall()
    return [dict(zip(_HISTORY_COLUMNS, r, strict=True)) for r in rows]
