"""Spec 004's orchestrations over HTTP: the definitions, runs and resumes, answered at once or
streamed.

The definitions are the gateway's (read from ORCHESTRATIONS_DIR at start, the same for every
workspace); a key of any workspace reads them. A run is the planner's: `POST .../run` sends it the
definition it serves and waits (read-your-writes) until the run completes, pauses or fails. A
resume is review's to record. The `/stream` forms answer with the run's events as SSE
(`runstream.py`) instead of waiting.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIType, Schema
from litestar.params import FromPath, JSONBody
from litestar.response import Stream

from contracts.commands import ResumeOrchestrationCommand, StartOrchestrationCommand
from contracts.orchestrations import (
    OrchestrationDetail,
    OrchestrationRunAnswer,
    OrchestrationSummary,
    ResumeOrchestration,
    RunOrchestration,
)
from contracts.subjects import RESUME_ORCHESTRATION, START_ORCHESTRATION
from libs.domain.orchestration_run import PURGED, orchestration_run_id
from libs.readmodels import orchestration_runs, run_files
from libs.web.auth import caller
from libs.web.commands import send
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from libs.web.sse import sse_response
from services.gateway import runstream
from services.gateway.state import GatewayState, gateway_state

PATH = "/api/v1/orchestrations"


@get(PATH)
async def list_orchestrations(request: Request[Any, Any, Any]) -> list[OrchestrationSummary]:
    return gateway_state(request).orchestrations.summaries()


@get(PATH + "/{orch_id:str}")
async def get_orchestration(request: Request[Any, Any, Any], orch_id: FromPath[str]) -> OrchestrationDetail:
    found = gateway_state(request).orchestrations.detail(orch_id)
    if found is None:
        raise ApiError(404, "Not found", f"orchestration {orch_id} not found")
    return found


# Where a synchronous answer stops waiting: the run goes no further without a person, or has ended.
SETTLED = frozenset({"completed", "paused", "failed"})


@post(PATH + "/{orch_id:str}/run", status_code=200)
async def run_orchestration(
    request: Request[Any, Any, Any], orch_id: FromPath[str], data: JSONBody[RunOrchestration]
) -> OrchestrationRunAnswer:
    state, workspace = gateway_state(request), caller(request).workspace_id
    run_id = await _start(state, workspace, orch_id, data)
    return await settled_answer(state, workspace, run_id)


@post(PATH + "/{orch_id:str}/run/stream", status_code=200)
async def stream_orchestration(
    request: Request[Any, Any, Any], orch_id: FromPath[str], data: JSONBody[RunOrchestration]
) -> Stream:
    """As `run`, answered with the run's events as SSE (runstream.py) until it completes,
    pauses or fails."""
    state, workspace = gateway_state(request), caller(request).workspace_id
    run_id = await _start(state, workspace, orch_id, data)
    return sse_response(request, runstream.follow(state, orchestration_run_id(run_id), run_id))


async def _start(state: GatewayState, workspace: str, orch_id: str, data: RunOrchestration) -> str:
    """Starts a run (the planner's); its run_id."""
    found = state.orchestrations.definitions.get(orch_id)
    if found is None:
        raise ApiError(404, "Not found", f"orchestration {orch_id} not found")
    command = StartOrchestrationCommand(
        workspace_id=workspace,
        orchestration=msgspec.to_builtins(found.orchestration),
        digest=found.digest,
        message=data.message,
        max_cost_usd=data.max_cost_usd,
        files=data.files,
    )
    reply = await send(state.broker, START_ORCHESTRATION, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    assert reply.run_id is not None
    return reply.run_id


NOT_PAUSED = {ERRORS: {409: "The run is not paused at a human step (and this is not the resume that resumed it)."}}


@post(PATH + "/runs/{run_id:str}/resume", status_code=200, opt=NOT_PAUSED)
async def resume_run(
    request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[ResumeOrchestration]
) -> OrchestrationRunAnswer:
    """Review records the response (or refuses it); the answer is the run's once it has moved
    past the gate answered: completed, paused at another gate, or failed."""
    state, workspace = gateway_state(request), caller(request).workspace_id
    gate = await _resume(state, workspace, run_id, data)
    return await settled_answer(state, workspace, run_id, past=gate)


@post(PATH + "/runs/{run_id:str}/resume/stream", status_code=200, opt=NOT_PAUSED)
async def stream_resume(
    request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[ResumeOrchestration]
) -> Stream:
    """As `resume`, answered with the run's events from after the gate answered, as SSE."""
    state, workspace = gateway_state(request), caller(request).workspace_id
    gate = await _resume(state, workspace, run_id, data)
    return sse_response(request, runstream.follow(state, orchestration_run_id(run_id), run_id, past_gate=gate))


async def _resume(state: GatewayState, workspace: str, run_id: str, data: ResumeOrchestration) -> str | None:
    """Has review record the response; the gate it answered."""
    command = ResumeOrchestrationCommand(workspace_id=workspace, run_id=run_id, response=data.response)
    reply = await send(state.broker, RESUME_ORCHESTRATION, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    return reply.gate


async def settled_answer(
    state: GatewayState, workspace: str, run_id: str, past: str | None = None
) -> OrchestrationRunAnswer:
    """The run's answer once it has completed, paused or failed (or the wait ran out); paused at
    another gate than `past`, the one a resume answered."""
    run_uuid = str(orchestration_run_id(run_id))
    answered = orchestration_runs.status_token("paused", past) if past is not None else None

    async def current() -> str | None:
        row = await orchestration_runs.run_of(state.pool, workspace, run_uuid)
        return _token(row) if row else None

    def settled(token: str | None) -> bool:
        return token is not None and token.partition(":")[0] in SETTLED and token != answered

    reached = await state.watch.status_reaches(run_uuid, settled, current, state.settings.orchestration_wait_s)
    row = await orchestration_runs.run_of(state.pool, workspace, run_uuid)
    if row is None and reached == "failed":  # failed and gone: its workspace's purge stopped it
        return OrchestrationRunAnswer(status="failed", run_id=run_id, response=PURGED)
    if row is None or _token(row) == answered:  # still at the gate answered: going on
        return OrchestrationRunAnswer(status="running", run_id=run_id)
    if row["status"] == "completed":  # its shared_state is shown: a files key with its contents
        shown = await asyncio.to_thread(run_files.with_contents, state.store.blobs, workspace, row["shared_state"])
        row = {**row, "shared_state": shown}
    return answer(row)


def _token(row: dict[str, Any]) -> str:
    return orchestration_runs.status_token(row["status"], (row["human_input_required"] or {}).get("gate"))


def answer(row: dict[str, Any]) -> OrchestrationRunAnswer:
    """Spec 004's shape of the run's row."""
    status, run_id = row["status"], row["run_id"]
    if status == "completed":
        return msgspec.convert(
            {k: row[k] for k in ("status", "run_id", "response", "shared_state", "step_history")},
            OrchestrationRunAnswer,
        )
    if status == "paused":
        return msgspec.convert(
            {"status": status, "run_id": run_id, "human_input_required": row["human_input_required"]},
            OrchestrationRunAnswer,
        )
    if status == "failed":
        return OrchestrationRunAnswer(status="failed", run_id=run_id, response=row["response"])
    return OrchestrationRunAnswer(status="running", run_id=run_id)


ROUTES = [list_orchestrations, get_orchestration, run_orchestration, stream_orchestration, resume_run, stream_resume]

# What each SSE route's frames carry; Litestar documents a stream as JSON.
FRAMES = (
    "SSE frames: event=<type>, id=<seq of the event it comes from>, data=JSON. Types: step_start, "
    "step_complete, agent_turn, tool_execution, tool_result, human_input_required, orchestration_complete, "
    "orchestration_error, done (the last frame). A client that drops resumes from the events feed "
    "(GET /api/v1/workspaces/{workspaceID}/orchestration/events?since_seq=<last id>)."
)


def document(openapi: OpenAPI) -> None:
    for path in (PATH + "/{orch_id}/run/stream", PATH + "/runs/{run_id}/resume/stream"):
        operation = (openapi.paths or {})[path].post
        assert operation is not None and operation.responses is not None
        operation.responses["200"].content = {
            "text/event-stream": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, description=FRAMES))
        }
