"""The AsyncAPI document of the bus: a channel for every domain event, and payload schemas that
refuse what the event would not carry, valid AsyncAPI 3.0 by the specification's own JSON Schema
(the e2e test checks what the bus really carries)."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema.validators import validator_for

from exports.asyncapi import document, event_classes
from exports.documents import SCHEMAS_DIR
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
            "agent_type": "codegen",
            "provider": "anthropic",
            "model": "m",
            "output": {"files": {}, "summary": "done"},
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


# Every event type the aggregates emit, as docs/architecture.md section 3 lists them: written out
# here so that an event class added, renamed or made by the library shows as a difference.
EVENT_TYPES = {
    *("task.submitted", "task.subtask_queued", "task.subtask_dispatched", "task.started"),
    *("task.subtask_succeeded", "task.subtask_failed", "task.review_requested", "task.approved"),
    *("task.revision_requested", "task.failed", "task.completed", "task.paused", "task.resumed"),
    *("task.child_linked", "task.parent_completed", "task.plan_requested", "task.planned", "task.cancelled"),
    "task.retried",
    *("run.started", "run.model_call_started", "run.model_called", "run.tool_called", "run.succeeded"),
    *("run.failed", "run.budget_stopped", "run.lease_expired", "run.released"),
    *("gate.opened", "gate.decided", "question_gate.asked", "question_gate.answered", "question_gate.expired"),
    *("ledger.opened", "ledger.charged", "pull_request.opened", "pull_request.skipped", "pull_request.failed"),
    *("schedule.opened", "schedule.queued", "schedule.started", "schedule.finished"),
    *("workspace.created", "workspace.key_issued", "workspace.key_revoked", "workspace.config_updated"),
    *("workspace.purged", "workspace.secret_set", "workspace.secret_cleared"),
    *("agent_session.created", "agent_session.stopped", "agent_soul.created", "agent_soul.set"),
    "agent_session.child_spawned",
    *("channel.opened", "channel.message_sent"),
    *("orchestration_run.started", "orchestration_run.step_started", "orchestration_run.step_dispatched"),
    *("orchestration_run.step_completed", "orchestration_run.paused", "orchestration_run.completed"),
    *("orchestration_run.failed", "orchestration_run.resumed", "input_gate.opened", "input_gate.answered"),
    "orchestration_run.step_retried",
    *("github_account.linked", "github_account.signed_in", "github_installation.linked"),
    "webhook_delivery.received",
    *("intake_request.task_created", "intake_request.refused", "intake_request.replied"),
    *("worker_machine.started", "worker_machine.reported", "worker_machine.destroyed"),
}


def test_the_document_has_the_events_the_aggregates_emit_and_no_other() -> None:
    doc = document(VERSION)
    events = {m["name"] for m in doc["components"]["messages"].values() if "." in m["name"]}

    assert events == EVENT_TYPES
    assert set(event_classes()) == EVENT_TYPES


def test_every_domain_event_has_a_channel_of_its_own() -> None:
    doc = document(VERSION)
    addresses = {channel["address"] for channel in doc["channels"].values()}
    for event_type in event_classes():
        assert f"events.{{workspaceId}}.{event_type}" in addresses
    assert "cmd.planner.submit-tasks" in addresses
    # The live task logs are derived from the events (spec 000's WebSocket): no subject of their own.
    assert not any(address and address.startswith("logs.") for address in addresses)


# The AsyncAPI Initiative's JSON Schema of AsyncAPI 3.0.0, as published in the npm package
# @asyncapi/specs 6.11.1 (schemas/3.0.0-without-$id.json, Apache-2.0).
ASYNCAPI_SPEC = Path(__file__).parent.parent / "data" / "asyncapi-3.0.0.schema.json"


def test_the_exported_document_is_valid_asyncapi_3() -> None:
    spec = json.loads(ASYNCAPI_SPEC.read_text())
    validator = validator_for(spec)(spec)
    exported = json.loads((SCHEMAS_DIR / "asyncapi.json").read_text())

    problems = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(exported)]

    assert not problems
    broken = {**exported, "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/replies"}}}}
    assert not validator.is_valid(broken), "the spec's schema refuses what AsyncAPI 3 does not allow"
