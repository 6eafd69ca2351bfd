"""Validating a message against the AsyncAPI document's schema for it (jsonschema, with the
document as the registry its `$ref`s resolve in)."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

DOCUMENT = "urn:orchestrator:asyncapi"


def validators(doc: dict[str, Any]) -> dict[str, tuple[str, Draft202012Validator]]:
    """Per event type: its channel's address, and a validator of its message's payload."""
    registry = Registry().with_resource(DOCUMENT, Resource.from_contents(doc, default_specification=DRAFT202012))
    found = {}
    for channel_id, channel in doc["channels"].items():
        for message_id in channel["messages"]:
            message = doc["components"]["messages"][message_id]
            schema = {"$ref": f"{DOCUMENT}#/components/messages/{message_id}/payload"}
            found[message["name"]] = (channel_id, Draft202012Validator(schema, registry=registry))
    return found
