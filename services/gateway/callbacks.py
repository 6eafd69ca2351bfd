"""Spec 003's worker callback: `POST /api/callbacks/complete`, from a container worker with the
per-run callback token it was started with (`Authorization: Bearer <token>`), not a workspace
key. The owner of the worker's machine and run (the executor) checks the token and records the
report once (`cmd.executor.report-worker`); this edge checks the body and passes it on."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.params import JSONBody

from contracts.callbacks import CallbackAnswer, WorkerCallback
from contracts.commands import ReportWorker
from contracts.subjects import REPORT_WORKER
from libs.web.commands import send
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from services.gateway.state import gateway_state

BEARER = "bearer "


def _token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("Authorization", "")
    token = header[len(BEARER) :].strip() if header[: len(BEARER)].lower() == BEARER else ""
    if not token:
        raise ApiError(401, "callback_token_missing", "Authorization: Bearer <the run's callback token> is required")
    return token


@post(
    "/api/callbacks/complete",
    status_code=200,
    opt={
        "public": True,  # the callback token authenticates it, not a workspace key
        ERRORS: {
            400: "The body is malformed, or the run is not a run of the task named.",
            401: "The callback token is missing, or is not the run's.",
            409: "A different report of the run is on record, or `succeeded` for a run not completed.",
            503: "The executor cannot answer now: try again.",
        },
    },
)
async def worker_callback(request: Request[Any, Any, Any], data: JSONBody[WorkerCallback]) -> CallbackAnswer:
    """A container worker's report of its run's end; the same report again changes nothing."""
    state = gateway_state(request)
    command = ReportWorker(
        run_id=data.run_id,
        task_id=data.task_id,
        token=_token(request),
        status=data.status,
        pr_url=data.pr_url,
        error=data.error,
        metadata=data.metadata,
    )
    reply = await send(state.broker, REPORT_WORKER, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    status = "unchanged" if reply.status == "unchanged" else "recorded"
    return CallbackAnswer(status=status, task_id=data.task_id, run_id=data.run_id)


ROUTES = [worker_callback]
