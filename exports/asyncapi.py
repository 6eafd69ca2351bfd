"""The AsyncAPI 3.0 document of the bus: every domain event's subject and payload, and the
commands with their replies. (The live task logs are no channel: they are derived from the events.)

Built from the code, never written by hand: the event payloads from their Structs
(`contracts.payloads`: the one definition, which the aggregates emit and every reader decodes),
the rest from the msgspec contracts. `just contracts` writes it with the other exports, and a
test fails when it is stale. It lives here, not in `contracts/`, because it reads `libs/domain`
(`event_classes`: which events the aggregates emit): the contracts import nothing above them.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import msgspec
from eventsourcing.domain import Aggregate

from contracts import commands, subjects
from contracts.events import EventEnvelope
from contracts.payloads import PAYLOADS
from libs.domain import (
    agent_session,
    agent_soul,
    channel,
    gate,
    github_account,
    github_installation,
    intake_request,
    ledger,
    orchestration_run,
    pull_request,
    run,
    schedule,
    task,
    webhook_delivery,
    worker_machine,
    workspace,
)
from libs.domain.base import EventTypes, payload_type

ASYNCAPI_VERSION = "3.0.0"
REF = "#/components/schemas/{name}"
_DOMAIN_MODULES = (
    *(task, run, gate, ledger, pull_request, schedule, workspace, agent_session, agent_soul, channel),
    orchestration_run,
    github_account,
    github_installation,
    webhook_delivery,
    intake_request,
    worker_machine,
)

# (subject, what is sent, what comes back): each to the single writer of what it changes.
COMMANDS: tuple[tuple[str, type[msgspec.Struct], str], ...] = (
    (subjects.SUBMIT_TASKS, commands.SubmitTasksCommand, "Submit tasks (answered by the planner)"),
    (
        subjects.START_ORCHESTRATION,
        commands.StartOrchestrationCommand,
        "Start a run of an orchestration (answered by the planner)",
    ),
    (subjects.STOP_TASK, commands.StopTaskCommand, "Stop (cancel) a task (answered by the planner)"),
    (subjects.RETRY_TASK, commands.RetryTaskCommand, "Retry a failed or cancelled task (answered by the planner)"),
    (subjects.DECIDE_REVIEW, commands.DecideReviewCommand, "Record a review decision (answered by review)"),
    (subjects.ASK_QUESTION, commands.AskQuestionCommand, "Ask a person an agent's question (answered by review)"),
    (subjects.ANSWER_QUESTION, commands.AnswerQuestionCommand, "Answer an agent's question (answered by review)"),
)


def event_classes() -> dict[str, type[Aggregate.Event]]:
    """Every domain event class, by its wire type (`task.submitted`), in a stable order."""
    found: dict[str, type[Aggregate.Event]] = {}
    for module in _DOMAIN_MODULES:
        for aggregate in vars(module).values():
            if not (inspect.isclass(aggregate) and issubclass(aggregate, Aggregate)):
                continue
            if aggregate.__module__ != module.__name__:
                continue
            for name, cls in vars(aggregate).items():
                if not (inspect.isclass(cls) and issubclass(cls, Aggregate.Event)) or name == "Event":
                    continue
                if payload_type(cls) is None:
                    # The creation event eventsourcing makes for every aggregate: ours name their
                    # own (`Run.Started`), and the one called Created (`Workspace`'s) has a payload.
                    continue
                found[EventTypes.name(cls)] = cls
    return dict(sorted(found.items()))


def document(version: str) -> dict[str, Any]:
    # The payload Struct of each event type: a field an event has always carried is required,
    # one added later has its default, and no other is allowed.
    payloads = PAYLOADS
    contracts: list[Any] = [
        EventEnvelope,
        commands.CommandReply,
        *(c for _, c, _ in COMMANDS),
    ]
    refs, schemas = msgspec.json.schema_components([*contracts, *payloads.values()], ref_template=REF)
    ref = dict(zip([*contracts, *payloads.values()], refs, strict=True))
    for struct in payloads.values():
        # Readers pass over a field an older event carried; what is emitted has exactly these.
        schemas[ref[struct]["$ref"].rpartition("/")[2]]["additionalProperties"] = False

    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    workspace_param = {"workspaceId": {"description": "The workspace the event belongs to."}}
    for event_type, struct in payloads.items():
        message = _id(event_type)
        messages[message] = {
            "name": event_type,
            "title": event_type,
            "payload": {
                "allOf": [
                    ref[EventEnvelope],
                    {
                        "type": "object",
                        "properties": {"type": {"const": event_type}, "payload": ref[struct]},
                    },
                ]
            },
        }
        channels[message] = {
            "address": subjects.event_subject("{workspaceId}", event_type),
            "parameters": workspace_param,
            "messages": {message: {"$ref": f"#/components/messages/{message}"}},
            "description": (
                f"JetStream stream {subjects.EVENTS_STREAM}; `Nats-Msg-Id` is the event's `seq`. Every event is"
                " sent whole: events name files by digest, so each is far smaller than a message."
            ),
        }
        operations[f"relay_{message}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{message}"},
            "summary": "The outbox relay publishes each appended event, in seq order.",
        }

    messages["CommandReply"] = {"name": "CommandReply", "payload": ref[commands.CommandReply]}
    channels["replies"] = {
        "address": None,
        "messages": {"CommandReply": {"$ref": "#/components/messages/CommandReply"}},
        "description": "The requester's reply inbox (NATS request/reply).",
    }
    for subject, command, summary in COMMANDS:
        name = command.__name__
        messages[name] = {"name": name, "payload": ref[command]}
        channels[_id(subject)] = {"address": subject, "messages": {name: {"$ref": f"#/components/messages/{name}"}}}
        operations[_id(subject)] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{_id(subject)}"},
            "summary": summary + "; one replica of the owner's queue group answers.",
            "reply": {"channel": {"$ref": "#/channels/replies"}},
        }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Agent orchestrator bus",
            "version": version,
            "description": (
                "Domain events on NATS JetStream (one subject per event type, per workspace) "
                "and the commands each owner answers."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _id(name: str) -> str:
    """An AsyncAPI id (letters, digits, `_` and `-`) for an event type or a subject."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
