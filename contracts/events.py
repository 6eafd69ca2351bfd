"""The domain event envelope: what every API, stream and bus message carries for an event.

`seq` is the event store's notification id (global order, strictly increasing, gaps allowed);
`type` is `<aggregate>.<event>` in snake case, e.g. `task.submitted`, `run.succeeded`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from contracts.payloads import PAYLOADS

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


P = TypeVar("P", bound=msgspec.Struct)


class Event(msgspec.Struct, Generic[P], frozen=True, kw_only=True):
    """An envelope whose payload is its event type's Struct (`contracts.payloads`): what a
    handler or a projection reads attributes of, never string keys (`Event[RunSucceeded]`)."""

    seq: int
    type: str
    workspace_id: str
    aggregate_id: str
    version: int
    occurred_at: int  # epoch milliseconds
    payload: P


class UnknownEventType(ValueError):
    """An envelope whose type no payload Struct is registered for."""


def typed(envelope: EventEnvelope) -> Event[Any]:
    """The envelope with its payload converted to its type's Struct (`PAYLOADS`); a field an
    older event lacks takes the Struct's default. Raises `UnknownEventType`, or
    `msgspec.ValidationError` for a payload its Struct refuses."""
    struct = PAYLOADS.get(envelope.type)
    if struct is None:
        raise UnknownEventType(envelope.type)
    return Event(
        seq=envelope.seq,
        type=envelope.type,
        workspace_id=envelope.workspace_id,
        aggregate_id=envelope.aggregate_id,
        version=envelope.version,
        occurred_at=envelope.occurred_at,
        payload=msgspec.convert(envelope.payload, struct),
    )


class FeedEvent(msgspec.Struct, frozen=True):
    """The `data:` of an SSE frame on spec 001's events feed."""

    seq: int
    type: str
    payload: dict[str, Any]


# Payload fields kept in the event store and on the bus, never shown to a client (the feed, the
# debug dump): a key's hash is not the key, but it is nobody's business; a sealed credential is
# not the credential, but whoever holds SECRETS_KEY could open it.
PRIVATE_FIELDS: dict[str, frozenset[str]] = {
    "workspace.key_issued": frozenset({"key_hash"}),
    "workspace.secret_set": frozenset({"sealed"}),
    "agent_session.created": frozenset({"token_hash"}),
    "worker_machine.started": frozenset({"callback_token_hash"}),
}


def public_payload(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    private = PRIVATE_FIELDS.get(event_type)
    return {k: v for k, v in payload.items() if k not in private} if private else payload


def task_of(event: EventEnvelope) -> str | None:
    """The task an event is about: a task's own events, and those of its runs, gates, pull
    request and charges, which name it in their payload; None for a workspace's own events.
    An orchestration run is the task of its agent steps' Runs: its own events are about it."""
    if event.type.startswith(("task.", "orchestration_run.")):
        return event.aggregate_id
    task_id = event.payload.get("task_id")
    return task_id if isinstance(task_id, str) else None
