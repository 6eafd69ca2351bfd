"""The tool call log (`rm_tool_calls`): a row per `run.tool_called` event, and the spec 001
entry it is served as. The projector writes the rows; the log routes read them, and the log's
stream turns events it has not seen projected yet into entries the same way."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events import Event
from contracts.payloads.run import RunToolCalled
from contracts.toollog import ToolCallEntry, ToolStatus
from libs.observability.logs import redact

TOOL_CALLED = "run.tool_called"
# The table's columns: what the log's reads select (the projector's rows carry the same keys).
COLUMNS = (
    "seq",
    "workspace_id",
    "session_id",
    "task_id",
    "subtask_id",
    "call_id",
    "tool",
    "status",
    "agent_name",
    "occurred_at",
    "duration_ms",
    "title",
    "target",
    "error",
)


def row(e: Event[RunToolCalled]) -> dict[str, Any]:
    """The `rm_tool_calls` row of a typed `run.tool_called` (`contracts.events.typed`)."""
    p = e.payload
    return {
        "seq": e.seq,
        "workspace_id": e.workspace_id,
        "session_id": e.aggregate_id,  # the Run: one agent session
        "task_id": p.task_id,
        "subtask_id": p.subtask_id,
        "call_id": p.call_id,
        "tool": p.tool,
        "status": p.status,
        "agent_name": p.agent_type,
        "occurred_at": e.occurred_at,
        "duration_ms": p.duration_ms,
        "title": p.title,
        "target": p.target,
        "error": p.error,
    }


def entry(r: dict[str, Any]) -> ToolCallEntry:
    """The wire entry of a row (as `row` builds it, or as read back from the table).

    What the model wrote (a search pattern, a path, an error quoting either) may hold a key it
    read in a file: masked here as the live task log masks the same titles."""
    return ToolCallEntry(
        tool=r["tool"],
        session_id=r["session_id"],
        call_id=r["call_id"],
        entry_id=f"entry_{r['seq']}",
        title=redact(r["title"]),
        timestamp=r["occurred_at"],
        duration=r["duration_ms"],
        status=r["status"],
        corrections=[],
        target=_masked(r["target"]),
        agent_name=r["agent_name"],
        container_id=None,
        workspace_id=r["workspace_id"],
        task_id=str(r["task_id"]),
        subtask_id=r["subtask_id"],
        error=_masked(r["error"]),
    )


def _masked(text: str | None) -> str | None:
    return None if text is None else redact(text)


class ToolCallFilter(msgspec.Struct, frozen=True):
    """What GET .../orchestration/log narrows the log to; None leaves a field unfiltered.
    The time range is half-open: since <= timestamp < until (epoch ms)."""

    tool: str | None = None
    status: ToolStatus | None = None
    session_id: str | None = None
    agent_name: str | None = None
    since: int | None = None
    until: int | None = None
