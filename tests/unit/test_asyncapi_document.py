"""The AsyncAPI document of the bus: a channel for every domain event, and payload schemas that
refuse what the event would not carry (the e2e test checks what the bus really carries)."""

from __future__ import annotations

from contracts.asyncapi import document, event_classes
from libs.web.ops import VERSION
from tests.asyncapi import validators


def test_a_payload_that_lacks_a_field_or_has_a_wrong_type_does_not_validate() -> None:
    checks = validators(document(VERSION))
    _, validator = checks["run.succeeded"]
    good = {
        "seq": 7,
        "type": "run.succeeded",
        "workspace_id": "w",
        "aggregate_id": "a",
        "version": 3,
        "occurred_at": 1,
        "payload": {
            "task_id": "t",
            "subtask_id": "s",
            "provider": "anthropic",
            "model": "m",
            "output": {},
            "usage": {"input_tokens": 1},
            "duration_ms": 5,
            "subrequests": 2,
            "attempt": 1,
        },
    }
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "payload": {k: v for k, v in good["payload"].items() if k != "usage"}})
    assert not validator.is_valid({**good, "payload": {**good["payload"], "attempt": "first"}})
    assert not validator.is_valid({**good, "type": "run.failed"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "seq"})


def test_every_domain_event_has_a_channel_of_its_own() -> None:
    doc = document(VERSION)
    addresses = {channel["address"] for channel in doc["channels"].values()}
    for event_type in event_classes():
        assert f"events.{{workspaceId}}.{event_type}" in addresses
    assert "cmd.planner.submit-tasks" in addresses and "logs.{workspaceId}.{taskId}" in addresses
