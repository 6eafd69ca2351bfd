"""The domain event envelope: what every API, stream and bus message carries for an event.

`seq` is the event store's notification id (global order, strictly increasing, gaps allowed);
`type` is `<aggregate>.<event>` in snake case, e.g. `task.submitted`, `run.succeeded`.
"""

from __future__ import annotations

from typing import Any

import msgspec

# A seq as a client sends it back to resume a feed (`?since_seq`, `Last-Event-ID`): what every
# feed sends as an event's `id:`, decimal digits, within PostgreSQL's bigint.
SEQ_PATTERN = r"^[0-9]{1,18}$"
SEQ_WORDS = "an event seq (decimal digits, at most 18)"


class EventEnvelope(msgspec.Struct, frozen=True):
    seq: int
    type: str
    workspace_id: str
    aggregate_id: str
    version: int
    occurred_at: int  # epoch milliseconds
    payload: dict[str, Any]


class FeedEvent(msgspec.Struct, frozen=True):
    """The `data:` of an SSE frame on spec 001's events feed."""

    seq: int
    type: str
    payload: dict[str, Any]


# Payload fields kept in the event store and on the bus, never shown to a client (the feed, the
# debug dump): a key's hash is not the key, but it is nobody's business.
PRIVATE_FIELDS: dict[str, frozenset[str]] = {"workspace.key_issued": frozenset({"key_hash"})}


def public_payload(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    private = PRIVATE_FIELDS.get(event_type)
    return {k: v for k, v in payload.items() if k not in private} if private else payload


def task_of(event: EventEnvelope) -> str | None:
    """The task an event is about: a task's own events, and those of its runs, gates, pull
    request and charges, which name it in their payload; None for a workspace's own events."""
    if event.type.startswith("task."):
        return event.aggregate_id
    task_id = event.payload.get("task_id")
    return task_id if isinstance(task_id, str) else None
