"""What every aggregate shares: its workspace, and event types named for the wire."""

from __future__ import annotations

import re
from typing import Any, ClassVar
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate

# Deterministic ids let a redelivered message find the aggregate it created the first time.
ID_NAMESPACE = UUID("6f1c2a4e-8b1d-4f3a-9c55-0d7e2b9a4c11")


def derived_id(*parts: object) -> UUID:
    return uuid5(ID_NAMESPACE, "/".join(str(p) for p in parts))


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class WorkspaceAggregate(Aggregate):
    """An aggregate that lives in one workspace; every event it emits says which."""

    workspace_id: str

    class Event(Aggregate.Event):
        workspace_id: str

    class Created(Aggregate.Created):
        workspace_id: str

    def emit(self, event_class: type[Aggregate.Event], **kwargs: Any) -> None:
        self.trigger_event(event_class, workspace_id=self.workspace_id, **kwargs)


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


ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "workspace_id"})


def event_payload(event: Any) -> dict[str, Any]:
    return {k: v for k, v in event.__dict__.items() if k not in ENVELOPE_FIELDS}
