"""Spec 001's events feed: catch-up from PostgreSQL, then live from JetStream, no gap, no dup."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from operator import itemgetter
from typing import Annotated, Any, TypeVar

import msgspec
from litestar.params import HeaderParameter, QueryParameter
from psycopg_pool import AsyncConnectionPool

from contracts.events import SEQ_PATTERN, EventEnvelope, FeedEvent, public_payload
from libs.eventstore.store import EventStore
from libs.readmodels import feed_reads, workspace_reads
from libs.web.errors import ApiError, refused_pattern
from libs.web.sse import CONNECTED, KEEPALIVE_S
from services.stream.broadcast import Broadcaster, Overflowed

PAGE = 1000
_encoder = msgspec.json.Encoder()


def frame(seq: int, type_: str, aggregate_id: str, payload: dict[str, Any]) -> bytes:
    # The payload names what it is about (`task_id` for `task.*`, `run_id` for `run.*`, ...)
    # so a subscriber can follow one task without knowing the envelope.
    about = f"{type_.partition('.')[0]}_id"
    payload = public_payload(type_, payload)
    if about == "workspace_id":  # a workspace's own events: the path names it already
        payload_with_id = payload
    else:
        payload_with_id = {about: aggregate_id, **payload}
    data = _encoder.encode(FeedEvent(seq=seq, type=type_, payload=payload_with_id))
    # msgspec's JSON has no raw newlines, so the whole event fits one `data:` line.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, type_.encode(), data)


async def events_feed(
    workspace_id: str, since: int, pool: AsyncConnectionPool, store: EventStore, broadcaster: Broadcaster
) -> AsyncGenerator[bytes, None]:
    """SSE bytes; frames that are ready together go out in one write."""
    queue = broadcaster.register(workspace_id)
    try:
        # Opens the stream at once (proxies and clients see it live) and sets the
        # reconnection delay; a comment, so no event is dispatched.
        yield CONNECTED
        last = since
        async for chunk, end in replay(
            since,
            lambda after: feed_reads.feed(pool, workspace_id, after, PAGE),
            lambda events: [
                (e.seq, e.type, e.aggregate_id, e.payload) for e in events if e.workspace_id == workspace_id
            ],
            itemgetter(0),
            lambda rows: b"".join(frame(*row) for row in rows),
            store,
        ):
            last = end
            yield chunk
        # Then live, skipping what the catch-up already sent.
        async for chunk in live(queue, last, lambda e: frame(e.seq, e.type, e.aggregate_id, e.payload)):
            yield chunk
    finally:
        broadcaster.unregister(workspace_id, queue)


R = TypeVar("R")


async def replay(
    after: int,
    projected: Callable[[int], Awaitable[tuple[list[R], int]]],
    from_log: Callable[[list[EventEnvelope]], list[R]],
    seq_of: Callable[[R], int],
    render: Callable[[list[R]], bytes],
    store: EventStore,
) -> AsyncGenerator[tuple[bytes, int], None]:
    """What came after seq `after`, as SSE chunks, each with the seq it ends at: 1. the projected
    rows (`projected(after)`: a page and the projector's position), complete up to that position;
    2. what the projector has not reached yet, from the log itself (`from_log` keeps the caller's)."""
    last = after
    while True:
        rows, position = await projected(last)
        if rows:
            last = seq_of(rows[-1])
            yield render(rows), last
        if len(rows) < PAGE:
            break
    cursor = max(last, position)
    while True:
        events = await asyncio.to_thread(store.read, cursor, PAGE)
        rows = [row for row in from_log(events) if seq_of(row) > last]
        if rows:
            last = seq_of(rows[-1])
            yield render(rows), last
        if len(events) < PAGE:
            break
        cursor = events[-1].seq


async def live(
    queue: asyncio.Queue[EventEnvelope | Overflowed], last: int, render: Callable[[EventEnvelope], bytes]
) -> AsyncGenerator[bytes, None]:
    """The broadcaster's events after `last`, as SSE frames; frames ready together go out in one
    write, a comment keeps an idle stream open, and a client that fell behind is let go (it
    resumes with Last-Event-ID = the last id it got)."""
    while True:
        try:
            async with asyncio.timeout(KEEPALIVE_S):
                items = [await queue.get()]
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        while not queue.empty():
            items.append(queue.get_nowait())
        chunk = []
        for item in items:
            if isinstance(item, Overflowed):
                if chunk:
                    yield b"".join(chunk)
                return
            if item.seq > last:
                chunk.append(render(item))
                last = item.seq
        if chunk:
            yield b"".join(chunk)


SinceSeq = Annotated[
    str | None,
    QueryParameter(
        name="since_seq",
        pattern=SEQ_PATTERN,
        description="Resume after this event seq: the events with a greater seq, then live.",
    ),
]
LastEventId = Annotated[
    str | None,
    HeaderParameter(
        name="Last-Event-ID",
        description=(
            "As `since_seq` (the same rule: decimal digits, at most 18), sent by an EventSource on "
            "reconnecting; the later of the two wins. Empty: no resume point."
        ),
    ),
]
_seq = re.compile(SEQ_PATTERN)


def resume_point(since_seq: str | None, last_event_id: str | None) -> int | None:
    """Where a client resumes: after `?since_seq` or `Last-Event-ID`, the later when both are
    given (a browser's EventSource keeps the `since_seq` it was opened with and sends the id of
    the last event it got on each reconnect), else None. One rule for both, `SEQ_PATTERN`: the
    route checks the query's; the header's is checked here, so the refusal names the header
    (Litestar would name the argument)."""
    if last_event_id and _seq.search(last_event_id) is None:
        raise refused_pattern("Last-Event-ID", SEQ_PATTERN)
    given = [int(seq) for seq in (since_seq, last_event_id) if seq]
    return max(given) if given else None


async def kept_after(pool: AsyncConnectionPool, workspace_id: str, asked: int | None, what: str, code: str) -> int:
    """The seq after which the workspace's history is kept (its last purge); a stream asked to
    resume before it gets a 410 that says so, never a silent gap."""
    workspace = await workspace_reads.workspace(pool, workspace_id)
    kept = workspace["purgedThrough"] if workspace else 0
    if asked is not None and asked < kept:
        raise ApiError(
            410,
            code,
            f"{what} up to seq {kept} was purged from this workspace; "
            f"resume with since_seq={kept} (or omit it) to get what came after the purge",
        )
    return kept
