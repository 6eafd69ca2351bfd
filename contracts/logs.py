"""Live task logs (spec 000 `GET /tasks/{id}/stream`): the entry and the message.

Log entries are a projection of the event log, not a stream of their own: each is derived from
one of the task's events (`libs.readmodels.task_log.log_entries`), kept in the `rm_task_log` read
model for the backlog, and derived again from `EVENTS` for the live part.
"""

from __future__ import annotations

from typing import Literal

import msgspec

LogLevel = Literal["log", "info", "warn", "error", "debug"]


class LogEntry(msgspec.Struct, frozen=True, rename="camel"):
    level: LogLevel
    message: str
    timestamp: int  # epoch ms: the event's `occurred_at`
    worker_id: str  # "<first 8 of the task id>-<subtask id>", as the spec's example
    task_id: str


class LogsMessage(msgspec.Struct, frozen=True):
    """One WebSocket message: `{"type": "logs", "data": [LogEntry]}`."""

    data: list[LogEntry]
    type: Literal["logs"] = "logs"


def worker_id(task_id: str, subtask_id: str) -> str:
    return f"{task_id[:8]}-{subtask_id}"
