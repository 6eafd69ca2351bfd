"""Spec 004's orchestration definitions over HTTP: the list and one definition in full.

The definitions are the gateway's (read from ORCHESTRATIONS_DIR at start, the same for every
workspace); a key of any workspace reads them. Runs of them are not served yet.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromPath

from contracts.orchestrations import OrchestrationDetail, OrchestrationSummary
from libs.web.errors import ApiError
from services.gateway.state import gateway_state

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


ROUTES = [list_orchestrations, get_orchestration]
