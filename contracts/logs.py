"""Live task logs (spec 000 `GET /tasks/{id}/stream`): the entry, the message, the subjects.

Log entries are not domain events: they are progress lines for people watching a task, kept
with bounded retention in their own JetStream stream (`LOGS`), one subject per task.
"""

from __future__ import annotations

from typing import Literal

import msgspec

LOGS_STREAM = "LOGS"
LOGS_SUBJECTS = "logs.>"

LogLevel = Literal["log", "info", "warn", "error", "debug"]


class LogEntry(msgspec.Struct, frozen=True, rename="camel"):
    level: LogLevel
    message: str
    timestamp: int  # epoch ms
    worker_id: str  # "<first 8 of the task id>-<subtask id>", as the spec's example
    task_id: str


class LogsMessage(msgspec.Struct, frozen=True):
    """One WebSocket message: `{"type": "logs", "data": [LogEntry]}`."""

    data: list[LogEntry]
    type: Literal["logs"] = "logs"


def log_subject(workspace_id: str, task_id: str) -> str:
    """`logs.<workspace>.<task id>`."""
    return f"logs.{workspace_id}.{task_id}"


def worker_id(task_id: str, subtask_id: str) -> str:
    return f"{task_id[:8]}-{subtask_id}"
