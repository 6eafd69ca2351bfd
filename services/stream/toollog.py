"""Spec 001's tool call log stream: each tool call of the workspace's agents as it is recorded,
`event: tool.call`, `id:` the seq of its `run.tool_called`, `data:` its log entry.

Without a resume point it starts live. With `?since_seq=N` (or `Last-Event-ID: N`) it first
sends the calls after N, the way the events feed catches up (`feed.py`): the projected log
(`rm_tool_calls`), then the event log beyond the projector, then live from the broadcaster,
dropping whatever the catch-up already sent, so there is no gap and no duplicate at the seam.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from operator import itemgetter
from typing import Any

import msgspec
from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Stream
from psycopg_pool import AsyncConnectionPool

from contracts.events import typed
from contracts.toollog import ToolCallEntry
from libs.eventstore.store import EventStore
from libs.readmodels import toolcall_reads, toolcalls
from libs.web.auth import workspace_of
from libs.web.sse import CONNECTED, sse_response
from services.stream.broadcast import Broadcaster
from services.stream.feed import (
    PAGE,
    LastEventId,
    SinceSeq,
    kept_after,
    live,
    replay,
    resume_point,
)
from services.stream.routes import PREFIX, PURGED
from services.stream.state import stream_state

EVENT = b"tool.call"
_encoder = msgspec.json.Encoder()


def frame(seq: int, entry: ToolCallEntry) -> bytes:
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, EVENT, _encoder.encode(entry))


def _frames(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(frame(r["seq"], toolcalls.entry(r)) for r in rows)


async def tool_log_feed(
    workspace_id: str, since: int | None, pool: AsyncConnectionPool, store: EventStore, broadcaster: Broadcaster
) -> AsyncGenerator[bytes, None]:
    """SSE bytes: the calls after `since` (None: from now on), then live."""
    queue = broadcaster.register(workspace_id, toolcalls.TOOL_CALLED)
    try:
        # From now on: the queue was registered first, so every call committed after this read
        # reaches it; read before `: connected`, so a client that has had that comment misses none.
        last = await asyncio.to_thread(store.head) if since is None else since
        yield CONNECTED
        if since is not None:
            async for chunk, end in replay(
                since,
                lambda after: toolcall_reads.tool_calls_after(pool, workspace_id, after, PAGE),
                lambda events: [
                    toolcalls.row(typed(e))
                    for e in events
                    if e.workspace_id == workspace_id and e.type == toolcalls.TOOL_CALLED
                ],
                itemgetter("seq"),
                _frames,
                store,
            ):
                last = end
                yield chunk
        # Then live, skipping what the catch-up already sent.
        async for chunk in live(queue, last, lambda e: frame(e.seq, toolcalls.entry(toolcalls.row(typed(e))))):
            yield chunk
    finally:
        broadcaster.unregister(workspace_id, queue, toolcalls.TOOL_CALLED)


@get(f"{PREFIX}/log/stream", opt=PURGED)
async def stream_tool_log(
    request: Request[Any, Any, Any],
    workspaceID: FromPath[str],
    since_seq: SinceSeq = None,
    last_event_id: LastEventId = None,
) -> Stream:
    state, workspace_id = stream_state(request), workspace_of(request, workspaceID)
    since = resume_point(since_seq, last_event_id)
    # Without a resume point the log stream follows new calls only (the feed replays history),
    # so there is no purge to check it against.
    if since is not None:
        await kept_after(state.pool, workspace_id, since, "the tool log", "tool_log_purged")
    return sse_response(request, tool_log_feed(workspace_id, since, state.pool, state.store, state.broadcaster))
