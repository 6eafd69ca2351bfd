"""Spec 001's tool call log: one entry per tool call of every agent run, listed page by page
(`GET .../orchestration/log`) and streamed as it is recorded (`GET .../orchestration/log/stream`).

The spec mixes its spellings (`sessionID`, `agentName`, `container_id`), so each wire name is
given here as the spec writes it rather than derived by a rule.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

ToolStatus = Literal["ok", "error", "intercepted"]
MAX_LIMIT = 200  # entries per page
DEFAULT_LIMIT = 50


class ToolCallEntry(
    msgspec.Struct,
    frozen=True,
    rename={
        "session_id": "sessionID",
        "call_id": "callID",
        "entry_id": "entryID",
        "agent_name": "agentName",
        "workspace_id": "workspaceID",
        "task_id": "taskID",
        "subtask_id": "subtaskID",
    },
):
    """One tool call. `sessionID` is the agent run (one attempt of one subtask); `entryID` is
    `entry_<seq>`, the seq of the call's `run.tool_called` event (what `since_seq` resumes from)."""

    tool: str
    session_id: str
    call_id: str  # the id the model gave the call
    entry_id: str
    title: str  # what the call did, or what went wrong: `Read src/app.py (120 bytes)`
    timestamp: int  # epoch ms
    duration: int  # ms
    status: ToolStatus  # nothing intercepts a call here yet, so `ok` or `error`
    corrections: list[Any]  # none are recorded yet: always empty
    target: str | None  # the path or pattern the call was about
    agent_name: str  # the agent type: codegen, test, review, ...
    container_id: str | None  # agents run in the executor's process, not in containers: null
    workspace_id: str
    # Beyond the spec: the task and subtask the run belongs to, and a failed call's error.
    task_id: str
    subtask_id: str
    error: str | None


class ToolLogMeta(msgspec.Struct, frozen=True):
    page: int
    limit: int
    total: int  # entries that match the filters, on every page
    pages: int  # ceil(total / limit): 0 when nothing matches


class ToolLogPage(msgspec.Struct, frozen=True):
    items: list[ToolCallEntry]  # newest first
    meta: ToolLogMeta
