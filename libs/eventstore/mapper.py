"""PayloadMapper: domain events whose one field is a payload Struct, stored as flat JSON.

A domain event is its envelope (`timestamp`, `workspace_id`, and `originator_topic` for a
creation) and `payload`, one frozen msgspec Struct (`contracts.payloads`). The events table keeps
them as one flat object, `{"timestamp": ..., "workspace_id": ..., <payload fields>...}`, the
layout the log had when events declared their fields themselves: old logs load, and every reader
of the table (`store._envelope`, the projector, the relay, the NATS consumers) reads it as before.

Saving encodes the envelope fields and the payload, and splices the two objects into one: the
same bytes as encoding the flat dict, without building it. Loading decodes the stored bytes twice,
each time straight into a Struct (the payload's, which passes over the envelope fields, and a
small one for the envelope, which passes over the payload's): msgspec skips what a Struct does not
name without building it, so this is faster than decoding one dict of everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from eventsourcing.domain import CanInitAggregate
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, find_id_convertor
from eventsourcing.utils import get_topic, resolve_topic

from libs.domain.base import payload_type


class _Head(msgspec.Struct):
    timestamp: datetime
    workspace_id: str


class _CreatedHead(msgspec.Struct):
    timestamp: datetime
    originator_topic: str
    workspace_id: str


@dataclass(frozen=True)
class _Kind:
    """What loading one topic's events needs, worked out once per topic."""

    cls: type
    payload: msgspec.json.Decoder[Any]
    head: msgspec.json.Decoder[Any]
    created: bool


_encoder = msgspec.json.Encoder()


class PayloadMapper(Mapper[UUID]):
    """Events without a payload Struct (none of the domain's) go through eventsourcing's Mapper."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kinds: dict[str, _Kind | None] = {}

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = domain_event.__dict__
        payload = state.get("payload")
        if not isinstance(payload, msgspec.Struct):
            return super().to_stored_event(domain_event)
        # The envelope fields in the order the events' dataclass fields have always had.
        if "originator_topic" in state:
            head: dict[str, Any] = {
                "timestamp": state["timestamp"],
                "originator_topic": state["originator_topic"],
                "workspace_id": state["workspace_id"],
            }
        else:
            head = {"timestamp": state["timestamp"], "workspace_id": state["workspace_id"]}
        head_json, payload_json = _encoder.encode(head), _encoder.encode(payload)
        # `{"timestamp":..,"workspace_id":..}` + `{"a":..}` -> `{"timestamp":..,"workspace_id":..,"a":..}`
        stored = head_json[:-1] + b"," + payload_json[1:] if len(payload_json) > 2 else head_json
        if self.compressor:
            stored = self.compressor.compress(stored)
        if self.cipher:
            stored = self.cipher.encrypt(stored)
        return StoredEvent(
            originator_id=state["originator_id"],
            originator_version=state["originator_version"],
            topic=get_topic(type(domain_event)),
            state=stored,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        topic = stored_event.topic
        kind = self._kinds[topic] if topic in self._kinds else self._kind(topic)
        if kind is None:
            return super().to_domain_event(stored_event)
        data = stored_event.state
        try:
            if self.cipher:
                data = self.cipher.decrypt(data)
            if self.compressor:
                data = self.compressor.decompress(data)
            head = kind.head.decode(data)
            payload = kind.payload.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{topic}', originator_id "
                f"'{stored_event.originator_id}' and originator_version {stored_event.originator_version}: {exc}"
            ) from exc
        originator_id = stored_event.originator_id
        state: dict[str, Any] = {
            "originator_id": find_id_convertor(kind.cls, type(originator_id))(originator_id),
            "originator_version": stored_event.originator_version,
            "timestamp": head.timestamp,
        }
        if kind.created:
            state["originator_topic"] = head.originator_topic
        state["workspace_id"] = head.workspace_id
        state["payload"] = payload
        # As eventsourcing's Mapper builds an event: a frozen dataclass, without its __init__.
        event = object.__new__(kind.cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def _kind(self, topic: str) -> _Kind | None:
        cls = resolve_topic(topic)
        struct = payload_type(cls)
        created = issubclass(cls, CanInitAggregate)
        kind = None
        if struct is not None:
            head = msgspec.json.Decoder(_CreatedHead if created else _Head)
            kind = _Kind(cls=cls, payload=msgspec.json.Decoder(struct), head=head, created=created)
        self._kinds[topic] = kind
        return kind
