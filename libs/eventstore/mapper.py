"""PayloadMapper: domain events whose one field is a payload Struct, stored as flat JSON.

A domain event is its envelope (`timestamp`, `workspace_id`, and `originator_topic` for a
creation) and `payload`, one frozen msgspec Struct (`contracts.payloads`). The events table keeps
them as one flat object, `{"timestamp": ..., "workspace_id": ..., <payload fields>...}`, the
layout the log had when events declared their fields themselves: old logs load, and every reader
of the table (`store._envelope`, the projector, the relay, the NATS consumers) reads it as before.

Saving encodes one dict: the envelope fields, then the payload's fields by name (its nested
Structs encode as themselves). Loading decodes the stored bytes straight into the payload's Struct
(which passes over the envelope fields), and the envelope fields into a small Struct of their own,
from the object's first bytes when the event is large: they lead it, and a payload can hold a
repository's worth of file refs. No dict of a loaded event is built.
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
_WORKSPACE_KEY = b'"workspace_id":"'
# How far into an event its `workspace_id` can start: after the timestamp and, in a creation, the
# aggregate's topic (a module and a class name).
_HEAD_BYTES = 512
# Below this size a second pass over the whole event costs less than cutting its head out.
_SMALL = 1024


class PayloadMapper(Mapper[UUID]):
    """Events without a payload Struct (none of the domain's) go through eventsourcing's Mapper."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._kinds: dict[str, _Kind | None] = {}  # by topic, for loading
        self._topics: dict[type, str | None] = {}  # by event class, for saving: None without a payload

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        cls = type(domain_event)
        topic = self._topics[cls] if cls in self._topics else self._topic(cls)
        if topic is None:
            return super().to_stored_event(domain_event)
        state = domain_event.__dict__
        # The envelope fields in the order the events' dataclass fields have always had, then the
        # payload's fields (shallow: its nested Structs encode as themselves).
        if "originator_topic" in state:
            flat: dict[str, Any] = {
                "timestamp": state["timestamp"],
                "originator_topic": state["originator_topic"],
                "workspace_id": state["workspace_id"],
            }
        else:
            flat = {"timestamp": state["timestamp"], "workspace_id": state["workspace_id"]}
        flat.update(msgspec.structs.asdict(state["payload"]))
        stored = _encoder.encode(flat)
        if self.compressor:
            stored = self.compressor.compress(stored)
        if self.cipher:
            stored = self.cipher.encrypt(stored)
        return StoredEvent(state["originator_id"], state["originator_version"], topic, stored)

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
            head = _head(kind.head, data)
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

    def _topic(self, cls: type) -> str | None:
        struct = payload_type(cls)
        if struct is not None and (
            struct.__struct_encode_fields__ != struct.__struct_fields__ or struct.__struct_config__.omit_defaults
        ):
            # Its fields are written flat by their names, every one: a Struct that renames or
            # omits some would be stored otherwise than it decodes.
            raise TypeError(f"{struct.__name__}: a payload Struct neither renames nor omits its fields")
        topic = get_topic(cls) if struct is not None else None
        self._topics[cls] = topic
        return topic

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


def _head(decoder: msgspec.json.Decoder[Any], data: bytes) -> Any:
    """The envelope fields of a large event, decoded from its first bytes up to the end of
    `workspace_id` (a workspace id needs no escapes); of a small one, or one laid out some other
    way, from the whole object."""
    start = data.find(_WORKSPACE_KEY, 0, _HEAD_BYTES) if len(data) > _SMALL else -1
    end = data.find(b'"', start + len(_WORKSPACE_KEY)) if start != -1 else -1
    if end != -1:
        try:
            return decoder.decode(b"".join((data[: end + 1], b"}")))
        except (msgspec.DecodeError, msgspec.ValidationError):
            pass  # not the layout this module writes: decoded whole below
    return decoder.decode(data)
