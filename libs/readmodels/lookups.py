"""What worker services read from the read models, synchronously, on the event store's own
connections (they run their handlers in threads). The HTTP services use the async reads instead
(`task_reads`, `workspace_reads`, `costs`, `dump`, ...).

Every SQL a worker runs against a read model is here, so a table's shape changes in one place.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.eventstore.store import EventStore
from libs.readmodels.schema import PROJECTOR


def _rows(store: EventStore, sql: str, params: tuple[Any, ...]) -> list[Any]:
    with store.recorder.datastore.get_connection() as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return list(cur.fetchall())


def budget(store: EventStore, workspace_id: str, task_id: str, run_id: str) -> dict[str, Any]:
    """The workspace's config (None when the read models do not hold the workspace) with what is
    charged to it and to the task, what the other runs not charged yet have used (per model, and
    whether for this task), and the projector's position: one read, so all of one moment.

    The sums are taken only when the config sets a cap they count against: a workspace without
    caps (most) does not pay for adding up every charge it ever had before each run."""
    rows = _rows(
        store,
        "SELECT coalesce((SELECT position FROM rm_position WHERE name = %s), 0) AS position, w.config, "
        "CASE WHEN w.config->>'budgetUsd' IS NOT NULL THEN "
        "  (SELECT coalesce(sum(cost_usd), 0) FROM rm_charges WHERE workspace_id = %s) ELSE 0 END AS workspace_spent, "
        "CASE WHEN w.config->>'taskBudgetUsd' IS NOT NULL THEN "
        "  (SELECT coalesce(sum(cost_usd), 0) FROM rm_charges WHERE task_id = %s::uuid) ELSE 0 END AS task_spent, "
        "CASE WHEN w.config->>'budgetUsd' IS NOT NULL OR w.config->>'taskBudgetUsd' IS NOT NULL THEN "
        "  (SELECT coalesce(json_agg(u), '[]') FROM ("
        "    SELECT model, task_id = %s::uuid AS this_task, sum(input_tokens) AS input_tokens, "
        "    sum(output_tokens) AS output_tokens, sum(cache_read_tokens) AS cache_read_tokens, "
        "    sum(cache_write_tokens) AS cache_write_tokens "
        "    FROM rm_run_usage WHERE workspace_id = %s AND run_id <> %s::uuid GROUP BY 1, 2) u) "
        "ELSE '[]' END AS running "
        "FROM (SELECT 1) AS one LEFT JOIN rm_workspaces w ON w.workspace_id = %s",
        (PROJECTOR, workspace_id, task_id, task_id, workspace_id, run_id, workspace_id),
    )
    return dict(rows[0])


def paused_tasks(store: EventStore, workspace_id: str) -> tuple[list[UUID], int]:
    """The workspace's paused tasks as the projector has them, and the seq it has reached: one
    statement, so both are of one moment (tasks paused after that seq are only in the log)."""
    rows = _rows(
        store,
        "SELECT coalesce((SELECT position FROM rm_position WHERE name = %s), 0) AS position, "
        "coalesce((SELECT array_agg(task_id) FROM rm_tasks WHERE workspace_id = %s AND status = 'paused'), "
        "'{}'::uuid[]) AS paused",
        (PROJECTOR, workspace_id),
    )
    return list(rows[0]["paused"]), rows[0]["position"]


def overdue_questions(store: EventStore, now_ms: int) -> list[str]:
    """Open questions past their expiry, oldest deadline first."""
    rows = _rows(
        store,
        "SELECT question_id FROM rm_questions WHERE status = 'open' AND expires_at <= %s ORDER BY expires_at",
        (now_ms,),
    )
    return [row["question_id"] for row in rows]


def open_questions_of(store: EventStore, run_ids: list[str]) -> list[str]:
    """The open questions the runs asked (a question's `session_id` is its run's id)."""
    rows = _rows(
        store,
        "SELECT question_id FROM rm_questions WHERE status = 'open' AND session_id = ANY(%s)",
        (run_ids,),
    )
    return [r["question_id"] for r in rows]
