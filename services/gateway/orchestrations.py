"""Spec 004's orchestration definitions over HTTP: the list and one definition in full.

The definitions are the gateway's (read from ORCHESTRATIONS_DIR at start, the same for every
workspace); a key of any workspace reads them. A run is the planner's: `POST .../run` sends it the
definition it serves and waits (read-your-writes) until the run completes, pauses or fails.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody

from contracts.commands import StartOrchestrationCommand
from contracts.orchestrations import (
    OrchestrationDetail,
    OrchestrationRunAnswer,
    OrchestrationSummary,
    RunOrchestration,
)
from contracts.subjects import START_ORCHESTRATION
from libs.domain.orchestration_run import PURGED, orchestration_run_id
from libs.readmodels import orchestration_runs
from libs.web.auth import caller
from libs.web.commands import send
from libs.web.errors import ApiError
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
    found = state.orchestrations.definitions.get(orch_id)
    if found is None:
        raise ApiError(404, "Not found", f"orchestration {orch_id} not found")
    command = StartOrchestrationCommand(
        workspace_id=workspace,
        orchestration=msgspec.to_builtins(found.orchestration),
        digest=found.digest,
        message=data.message,
        max_cost_usd=data.max_cost_usd,
    )
    reply = await send(state.broker, START_ORCHESTRATION, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    assert reply.run_id is not None
    return await settled_answer(state, workspace, reply.run_id)


async def settled_answer(state: GatewayState, workspace: str, run_id: str) -> OrchestrationRunAnswer:
    """The run's answer once it has completed, paused or failed (or the wait ran out)."""
    run_uuid = str(orchestration_run_id(run_id))

    async def current() -> str | None:
        row = await orchestration_runs.run_of(state.pool, workspace, run_uuid)
        return row["status"] if row else None

    reached = await state.watch.status_reaches(
        run_uuid, SETTLED.__contains__, current, state.settings.orchestration_wait_s
    )
    row = await orchestration_runs.run_of(state.pool, workspace, run_uuid)
    if row is None and reached == "failed":  # failed and gone: its workspace's purge stopped it
        return OrchestrationRunAnswer(status="failed", run_id=run_id, response=PURGED)
    if row is None:
        return OrchestrationRunAnswer(status="running", run_id=run_id)
    return answer(row)


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


ROUTES = [list_orchestrations, get_orchestration, run_orchestration]
