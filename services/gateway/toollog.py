"""Spec 001's tool call log: every tool call of every agent run in the workspace, newest first,
a page at a time, narrowed by tool, status, session, agent and time. Its live stream is the
stream service's (`.../orchestration/log/stream`)."""

from __future__ import annotations

import math
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import FromPath, FromQuery, QueryParameter

from contracts.tasks import NO_NUL  # PostgreSQL text cannot hold U+0000: a 400, not a 500
from contracts.toollog import DEFAULT_LIMIT, MAX_LIMIT, ToolLogMeta, ToolLogPage, ToolStatus
from libs.readmodels import toolcall_reads, toolcalls
from libs.readmodels.toolcalls import ToolCallFilter
from libs.web.auth import workspace_of
from services.gateway.state import gateway_state


@get("/api/v1/workspaces/{workspaceID:str}/orchestration/log")
async def tool_log(
    request: Request[Any, Any, Any],
    workspaceID: FromPath[str],
    page: Annotated[int, QueryParameter(ge=1, le=1_000_000)] = 1,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    tool: Annotated[str | None, QueryParameter(pattern=NO_NUL)] = None,
    status: FromQuery[ToolStatus | None] = None,
    # Named as the spec names them, so a refusal names what the client sent.
    sessionID: Annotated[str | None, QueryParameter(pattern=NO_NUL)] = None,
    agentName: Annotated[str | None, QueryParameter(pattern=NO_NUL)] = None,
    since: Annotated[int | None, QueryParameter(ge=0, description="epoch ms, inclusive")] = None,
    until: Annotated[int | None, QueryParameter(ge=0, description="epoch ms, exclusive")] = None,
) -> ToolLogPage:
    state, workspace_id = gateway_state(request), workspace_of(request, workspaceID)
    # The executor records the calls, not this gateway: wait for the projector to reach what
    # the log held when the request came, so a call already seen on the events feed is listed.
    await state.reach_head()
    only = ToolCallFilter(tool, status, sessionID, agentName, since, until)
    rows, total = await toolcall_reads.tool_calls(state.pool, workspace_id, only, page, limit)
    return ToolLogPage(
        items=[toolcalls.entry(r) for r in rows],
        meta=ToolLogMeta(page=page, limit=limit, total=total, pages=math.ceil(total / limit)),
    )


ROUTES = [tool_log]
