"""JSON Schema for every wire contract, the product's OpenAPI document and the AsyncAPI
document of its bus, as the files `just contracts` writes to contracts/schemas.

The files are committed; a test renders them again and fails when they differ, so the published
contracts never drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from contracts import (
    agent_context,
    agent_runtime,
    agent_spawn,
    commands,
    events,
    github,
    logs,
    orchestrations,
    task_feed,
    tasks,
    toollog,
    workspaces,
)
from exports import asyncapi
from libs.config import Settings
from libs.web.ops import VERSION
from services.gateway.app import create_app as gateway_app
from services.runtime.app import create_app as runtime_app
from services.stream.app import create_app as stream_app

# Beside the contracts they describe (and shipped with them), though written from up here.
SCHEMAS_DIR = Path(__file__).parent.parent / "contracts" / "schemas"

CONTRACTS: dict[str, type[msgspec.Struct]] = {
    "TaskRequest": tasks.TaskRequest,
    "SubmitTasks": tasks.SubmitTasks,
    "TaskIds": tasks.TaskIds,
    "RepoContext": tasks.RepoContext,
    "AgentConfig": tasks.AgentConfig,
    "TaskState": tasks.TaskState,
    "AgentResult": tasks.AgentResult,
    "CostBreakdown": tasks.CostBreakdown,
    "ReviewDecision": tasks.ReviewDecision,
    "CostsReport": tasks.CostsReport,
    "Health": tasks.Health,
    "ErrorBody": tasks.ErrorBody,
    "NewWorkspace": workspaces.NewWorkspace,
    "NewKey": workspaces.NewKey,
    "IssuedKey": workspaces.IssuedKey,
    "WorkspaceInfo": workspaces.WorkspaceInfo,
    "OrchestrationConfig": workspaces.OrchestrationConfig,
    "ToolCallEntry": toollog.ToolCallEntry,
    "ToolLogPage": toollog.ToolLogPage,
    "ToolLogMeta": toollog.ToolLogMeta,
    "LogEntry": logs.LogEntry,
    "LogsMessage": logs.LogsMessage,
    "EventEnvelope": events.EventEnvelope,
    "FeedEvent": events.FeedEvent,
    "SubmitTasksCommand": commands.SubmitTasksCommand,
    "DecideReviewCommand": commands.DecideReviewCommand,
    "CommandReply": commands.CommandReply,
    "NewAgentSession": agent_runtime.NewAgentSession,
    "CreatedAgentSession": agent_runtime.CreatedAgentSession,
    "Me": agent_context.Me,
    "Context": agent_context.Context,
    "SpawnRequest": agent_spawn.SpawnRequest,
    "Spawned": agent_spawn.Spawned,
    "SessionList": agent_spawn.SessionList,
    "Coordinator": agent_spawn.Coordinator,
    "DiagnosticError": agent_runtime.DiagnosticError,
    "NewMessage": agent_runtime.NewMessage,
    "NewReply": agent_runtime.NewReply,
    "SentMessage": agent_runtime.SentMessage,
    "ReceivedMessages": agent_runtime.ReceivedMessages,
    "ChannelList": agent_runtime.ChannelList,
    "OrchestrationSummary": orchestrations.OrchestrationSummary,
    "OrchestrationDetail": orchestrations.OrchestrationDetail,
    "TaskPage": task_feed.TaskPage,
    "TaskHistory": task_feed.TaskHistory,
    "TaskStatusReport": task_feed.TaskStatusReport,
    "StopTaskCommand": commands.StopTaskCommand,
    "RetryTaskCommand": commands.RetryTaskCommand,
    "LinkedInstallation": github.LinkedInstallation,
    "AuthDiagnostics": github.AuthDiagnostics,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    schemas = {name: msgspec.json.schema(struct) for name, struct in CONTRACTS.items()}
    # What a Struct cannot state: a review's feedback is required for reject and revise.
    schemas["ReviewDecision"]["$defs"]["ReviewDecision"].update(tasks.FEEDBACK_REQUIRED)
    return schemas


def openapi() -> dict[str, Any]:
    """One document for the product: the gateway's routes, the stream service's and the runtime
    service's (spec 002)."""
    settings = Settings(service="export", database_url="postgresql://unused")
    gateway = gateway_app(settings).openapi_schema.to_schema()
    for other in (stream_app(settings), runtime_app(settings)):
        document = other.openapi_schema.to_schema()
        gateway["paths"].update(document["paths"])
        components = gateway.setdefault("components", {})
        components.setdefault("schemas", {}).update(document.get("components", {}).get("schemas", {}))
        components.setdefault("securitySchemes", {}).update(document.get("components", {}).get("securitySchemes", {}))
    return gateway


def render() -> dict[str, str]:
    files = {f"{name}.schema.json": _dump(schema) for name, schema in json_schemas().items()}
    files["openapi.json"] = _dump(openapi())
    files["asyncapi.json"] = _dump(asyncapi.document(VERSION))
    return files


def _dump(document: dict[str, Any]) -> str:
    # msgspec first: OpenAPI defaults can be Structs, which the json module cannot encode.
    return json.dumps(json.loads(msgspec.json.encode(document)), indent=2, sort_keys=True) + "\n"
