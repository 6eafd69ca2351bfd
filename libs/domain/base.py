"""What every aggregate shares: its workspace, and event types named for the wire.

Each event class declares one field, `payload`, typed with its wire type's Struct
(`contracts.payloads`): the aggregate emits that Struct, and the store keeps it flat beside the
envelope fields (`libs.eventstore.mapper`).
"""

from __future__ import annotations

import functools
import re
import typing
from typing import Any, ClassVar
from uuid import UUID, uuid5

import msgspec
from eventsourcing.domain import Aggregate

from libs.domain.payload_check import check_payload

# Deterministic ids let a redelivered message find the aggregate it created the first time.
ID_NAMESPACE = UUID("6f1c2a4e-8b1d-4f3a-9c55-0d7e2b9a4c11")


def derived_id(*parts: object) -> UUID:
    return uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts))


def _snake(name: str) -> str:
    # GitHub is one word on the wire: GitHubAccount is `github_account`.
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.replace("GitHub", "Github")).lower()


class WorkspaceAggregate(Aggregate):
    """An aggregate that lives in one workspace; every event it emits says which."""

    workspace_id: str

    # Each event's payload is checked against its Struct when the event is made, by `emit`, by
    # `_create` or otherwise (`libs.domain.payload_check`: why always, and what it costs).
    class Event(Aggregate.Event):
        workspace_id: str

        def __post_init__(self) -> None:
            super().__post_init__()
            _check(self)

    class Created(Aggregate.Created):
        workspace_id: str

        def __post_init__(self) -> None:
            super().__post_init__()
            _check(self)

    def emit(self, event_class: type[Aggregate.Event], payload: msgspec.Struct) -> None:
        self.trigger_event(event_class, workspace_id=self.workspace_id, payload=payload)


class EventTypes:
    """Maps event classes to wire type names (`task.submitted`) and back."""

    _by_class: ClassVar[dict[type, str]] = {}

    @classmethod
    def name(cls, event_class: type) -> str:
        name = cls._by_class.get(event_class)
        if name is None:
            aggregate, _, event = event_class.__qualname__.partition(".")
            name = f"{_snake(aggregate)}.{_snake(event)}"
            cls._by_class[event_class] = name
        return name


@functools.cache
def payload_type(event_class: type) -> type[msgspec.Struct] | None:
    """The Struct an event class's `payload` field is typed with; None for a class without one
    (the creation event eventsourcing defines for every aggregate, which none of ours emits)."""
    hint = typing.get_type_hints(event_class).get("payload")
    return hint if isinstance(hint, type) and issubclass(hint, msgspec.Struct) else None


def _check(event: Any) -> None:
    declared = payload_type(type(event))
    if declared is not None:
        check_payload(type(event), declared, event.payload)


# The fields of a stored event's JSON that are not its payload's (the store keeps them flat).
ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "workspace_id"})


def event_payload(event: Any) -> dict[str, Any]:
    """The event's payload as its wire JSON has it (camelCase where the Struct renames)."""
    payload: dict[str, Any] = msgspec.to_builtins(event.payload)
    return payload
