"""`rm_task_history`: every status change of every task, the feed spec 003's
`GET /api/tasks/history` pages through, newest first.

A row per transition, keyed by the seq of the event that made it; the task view finds them as it
folds the events (`TaskView.transitions`), so a row exists exactly when the status changed, and a
rebuild writes the same rows. Each row carries the task's times as they stood then: when it was
queued (submitted), first ran, and ended, and the error of a failure or a cancellation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from libs.readmodels.codec import as_json
from libs.readmodels.task_view import TaskView

TABLE = "rm_task_history"

DDL = """
CREATE TABLE IF NOT EXISTS rm_task_history (
    seq bigint PRIMARY KEY,
    workspace_id text NOT NULL,
    task_id uuid NOT NULL,
    status text NOT NULL,
    previous_status text,
    occurred_at bigint NOT NULL,
    queued_at bigint NOT NULL,
    started_at bigint,
    completed_at bigint,
    error text
);
CREATE INDEX IF NOT EXISTS rm_task_history_workspace ON rm_task_history (workspace_id, seq);
CREATE INDEX IF NOT EXISTS rm_task_history_task ON rm_task_history (task_id, seq);
"""


def project(cur: psycopg.Cursor[Any], views: Iterable[TaskView]) -> None:
    """The transitions the batch's events made (each view's `transitions`), in one statement."""
    transitions = sorted((t for view in views for t in view.transitions), key=lambda t: int(t["seq"]))
    if transitions:
        cur.execute(
            "INSERT INTO rm_task_history SELECT * FROM json_populate_recordset(NULL::rm_task_history, %s) "
            "ON CONFLICT (seq) DO NOTHING",
            (as_json(transitions),),
        )


def purge(cur: psycopg.Cursor[Any], workspace_id: str) -> None:
    """The history goes with its tasks: that of tasks a purge kept (submitted while it was
    recorded) stays. Call it after the purge has dropped the tasks from `rm_tasks`."""
    cur.execute(
        "DELETE FROM rm_task_history h WHERE workspace_id = %s "
        "AND NOT EXISTS (SELECT 1 FROM rm_tasks t WHERE t.task_id = h.task_id)",
        (workspace_id,),
    )
