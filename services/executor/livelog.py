"""The executor's lines on a task's live log (the runs' and the pull requests')."""

from __future__ import annotations

import time

from contracts.logs import LogEntry
from libs.bus.logs import LogPublisher


def log_line(
    logs: LogPublisher, workspace_id: str, task_id: str, worker: str, message: str, level: str = "log"
) -> None:
    """One line on the task's live log (never blocks, never raises)."""
    entry = LogEntry(
        level=level,  # type: ignore[arg-type]
        message=message,
        timestamp=int(time.time() * 1000),
        worker_id=worker,
        task_id=task_id,
    )
    logs.emit(workspace_id, entry)
