"""Spec 001's events feed: catch-up from PostgreSQL, then live from JetStream, no gap, no dup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

import msgspec
from litestar.response import ServerSentEventMessage
from psycopg_pool import AsyncConnectionPool

from contracts.events import FeedEvent
from libs.eventstore.store import EventStore
from libs.readmodels import queries
from services.stream.broadcast import Broadcaster, Overflowed

PAGE = 1000
KEEPALIVE_S = 15.0
RECONNECT_MS = 1000
_encoder = msgspec.json.Encoder()


def frame(seq: int, type_: str, aggregate_id: str, payload: dict[str, Any]) -> ServerSentEventMessage:
    # The payload names what it is about (`task_id` for `task.*`, `run_id` for `run.*`, ...)
    # so a subscriber can follow one task without knowing the envelope.
    about = f"{type_.partition('.')[0]}_id"
    data = _encoder.encode(FeedEvent(seq=seq, type=type_, payload={about: aggregate_id, **payload})).decode()
    return ServerSentEventMessage(data=data, event=type_, id=seq)


async def events_feed(
    workspace_id: str, since: int, pool: AsyncConnectionPool, store: EventStore, broadcaster: Broadcaster
) -> AsyncGenerator[ServerSentEventMessage, None]:
    queue = broadcaster.register(workspace_id)
    try:
        # Opens the stream at once (proxies and clients see it live) and sets the
        # reconnection delay; a comment, so no event is dispatched.
        yield ServerSentEventMessage(data=None, comment="connected", retry=RECONNECT_MS)
        last = since
        # 1. The projected feed, page by page; complete up to the projector's position.
        while True:
            rows, position = await queries.feed(pool, workspace_id, last, PAGE)
            for seq, type_, aggregate_id, payload in rows:
                yield frame(seq, type_, aggregate_id, payload)
                last = seq
            if len(rows) < PAGE:
                break
        # 2. What the projector has not reached yet, from the log itself.
        cursor = max(last, position)
        while True:
            events = await asyncio.to_thread(store.read, cursor, PAGE)
            for e in events:
                if e.workspace_id == workspace_id and e.seq > last:
                    yield frame(e.seq, e.type, e.aggregate_id, e.payload)
                    last = e.seq
            if len(events) < PAGE:
                break
            cursor = events[-1].seq
        # 3. Live, skipping what the catch-up already sent.
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_S):
                    item = await queue.get()
            except TimeoutError:
                yield ServerSentEventMessage(data=None, comment="keep-alive")
                continue
            if isinstance(item, Overflowed):
                return  # the client resumes with Last-Event-ID = the last id it got
            if item.seq > last:
                yield frame(item.seq, item.type, item.aggregate_id, item.payload)
                last = item.seq
    finally:
        broadcaster.unregister(workspace_id, queue)
