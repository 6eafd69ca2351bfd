"""Stream service HTTP routes (spec 001): the events feed, its subscriber count, the debug dump."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, get
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIType, Schema
from litestar.params import FromPath
from litestar.response import Stream

from libs.observability.logs import redact
from libs.readmodels import dump
from libs.web.auth import workspace_of
from libs.web.openapi import ERRORS
from libs.web.sse import sse_response
from services.stream.feed import LastEventId, SinceSeq, events_feed, kept_after, resume_point
from services.stream.state import StreamState, stream_state

# Path parameters keep spec 001's name (`workspaceID`), so the OpenAPI document matches it.
PREFIX = "/api/v1/workspaces/{workspaceID:str}/orchestration"
# A resume point before the workspace's last purge: what it asks for is gone.
PURGED = {ERRORS: {410: "The history before the workspace's last purge is gone: resume from the seq named."}}


@get(f"{PREFIX}/events", opt=PURGED)
async def stream_events(
    request: Request[Any, Any, Any],
    workspaceID: FromPath[str],
    since_seq: SinceSeq = None,
    last_event_id: LastEventId = None,
) -> Stream:
    state, workspace_id = stream_state(request), workspace_of(request, workspaceID)
    asked = resume_point(since_seq, last_event_id)
    kept = await kept_after(state.pool, workspace_id, asked, "the events feed", "events_purged")
    since = asked if asked is not None else kept
    return sse_response(request, events_feed(workspace_id, since, state.pool, state.store, state.broadcaster))


@get(f"{PREFIX}/events/connections", sync_to_thread=False)
def events_connections(request: Request[Any, Any, Any], workspaceID: FromPath[str]) -> dict[str, int]:
    workspace_of(request, workspaceID)
    return {"count": stream_state(request).broadcaster.count(workspaceID)}


@get(f"{PREFIX}/debug-dump")
async def debug_dump(request: Request[Any, Any, Any], workspaceID: FromPath[str]) -> dict[str, Any]:
    state = stream_state(request)
    workspace_of(request, workspaceID)
    found = await dump.debug_dump(state.pool, workspaceID)
    head = await asyncio.to_thread(state.store.head)
    found["consumers"] = await _consumers(state, head)
    found["logHead"] = head
    # Whatever a task's files or an agent's output quoted: no key leaves in a dump.
    return msgspec.json.decode(redact(msgspec.json.encode(found).decode()))


async def _consumers(state: StreamState, head: int) -> dict[str, Any]:
    """Where each follower of the log stands, and how far behind its head (`lag`, in events)."""
    positions = await asyncio.to_thread(state.store.consumer_positions)
    for position in positions.values():
        position["lag"] = max(0, head - position["position"])
    relay = state.relay_progress["position"]
    return {"relay": {"position": relay, "lag": max(0, head - relay)}, "durable": positions}


# What each SSE route's frames carry; Litestar documents a stream as JSON.
SSE = {
    "/events": "SSE frames: event=<type>, id=<seq>, data=FeedEvent",
    "/log/stream": "SSE frames: event=tool.call, id=<seq>, data=ToolCallEntry",
}


def document(openapi: OpenAPI) -> None:
    for path, frames in SSE.items():
        operation = (openapi.paths or {})[PREFIX.replace(":str", "") + path].get
        assert operation is not None and operation.responses is not None
        operation.responses["200"].content = {
            "text/event-stream": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, description=frames))
        }
