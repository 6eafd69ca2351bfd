"""Spec 000 routes: health, tasks, review, costs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request, get, post
from litestar.openapi.spec import OpenAPI, Schema
from litestar.params import FromPath, JSONBody, QueryParameter

from contracts.commands import DecideReviewCommand, SubmitTasksCommand
from contracts.subjects import DECIDE_REVIEW, SUBMIT_TASKS
from contracts.tasks import (
    FEEDBACK_REQUIRED,
    CostsReport,
    Health,
    ReviewAccepted,
    ReviewDecision,
    SubmitTasks,
    TaskEnvelope,
    TaskIds,
    TaskState,
)
from libs.readmodels import costs, task_reads, workspace_reads
from libs.readmodels.task_files import with_contents
from libs.web.auth import caller
from libs.web.commands import send
from libs.web.errors import ApiError
from libs.web.openapi import as_spec
from libs.web.ops import VERSION
from services.gateway.state import GatewayState, gateway_state

T = TypeVar("T")


@get("/health", sync_to_thread=False, opt={"public": True})
def health() -> Health:
    return Health(service="agent-orchestrator", status="healthy", version=VERSION)


@post("/tasks", status_code=201)
async def submit_tasks(request: Request[Any, Any, Any], data: JSONBody[SubmitTasks]) -> TaskIds:
    return await submitted(request, data)


async def submitted(request: Request[Any, Any, Any], data: SubmitTasks) -> TaskIds:
    """The tasks submitted to the planner, with the workspace's defaults filled in (spec 000's
    `POST /tasks`, and spec 003's `POST /api/tasks`, which takes the same body)."""
    state = gateway_state(request)
    workspace = caller(request).workspace_id
    tasks = [msgspec.to_builtins(t) for t in data.tasks]
    found = await workspace_reads.workspace(state.pool, workspace)
    if found and found["config"]:
        given = (await request.json())["tasks"]  # as sent (decoded once, for `data`): which fields were given
        tasks = [
            with_workspace_defaults(t, g.get("config") or {}, found["config"])
            for t, g in zip(tasks, given, strict=True)
        ]
    command = SubmitTasksCommand(workspace_id=workspace, tasks=tasks)
    reply = await send(state.broker, SUBMIT_TASKS, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    return TaskIds(task_ids=reply.task_ids)


# A task's config field left out takes the workspace's default (spec 001 config), then the spec's.
WORKSPACE_DEFAULTS = {"provider": "defaultProvider", "model": "defaultModel", "planner": "planner"}


def with_workspace_defaults(task: dict[str, Any], given: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    filled = {field: config[key] for field, key in WORKSPACE_DEFAULTS.items() if field not in given and key in config}
    return {**task, "config": {**task["config"], **filled}} if filled else task


@get("/tasks/{task_id:str}")
async def get_task(request: Request[Any, Any, Any], task_id: FromPath[str]) -> TaskEnvelope:
    state, workspace = gateway_state(request), caller(request).workspace_id
    task = await find_task(state, workspace, task_id)
    # Its events name the files by digest: spec 000 shows their contents.
    task = await asyncio.to_thread(with_contents, state.store.blobs, workspace, task)
    return TaskEnvelope(task=msgspec.convert(task, TaskState))


@post("/tasks/{task_id:str}/review", status_code=200)
async def review_task(
    request: Request[Any, Any, Any], task_id: FromPath[str], data: JSONBody[ReviewDecision]
) -> ReviewAccepted:
    state = gateway_state(request)
    if data.task_id != task_id:
        raise ApiError(400, "task_id_mismatch", "taskId in the body must match the task in the path")
    workspace = caller(request).workspace_id
    status = await find_task(state, workspace, task_id, task_reads.task_status)
    if status != "review":
        # The client may have seen `review` on the feed before the read models caught up.
        await state.reach_head()
        status = await find_task(state, workspace, task_id, task_reads.task_status)
    if status != "review":
        raise ApiError(400, "invalid_state_transition", f"task {task_id} is '{status}', not 'review'")
    command = DecideReviewCommand(workspace, task_id, data.decision.value, data.feedback)
    reply = await send(state.broker, DECIDE_REVIEW, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    # The planner turns the recorded decision into the task's next status; wait (briefly)
    # for it so that a read right after this answer already sees that status.
    await _wait_for_status_change(state, workspace, task_id, "review")
    return ReviewAccepted(status=reply.status or "")


@get("/costs")
async def get_costs(
    request: Request[Any, Any, Any], since: Annotated[int | None, QueryParameter(name="since", ge=0)] = None
) -> CostsReport:
    state = gateway_state(request)
    await state.watch.reach(state.watch.written, state.settings.read_your_writes_timeout_s)
    report = await costs.costs(state.pool, caller(request).workspace_id, since)
    return msgspec.convert(report, CostsReport)


async def find_task(
    state: GatewayState, workspace: str, task_id: str, read: Callable[..., Awaitable[T | None]] = task_reads.task_state
) -> T:
    """What `read` returns for the task (its state by default), once the read models have
    reached this gateway's writes; 404 when there is no such task."""
    if not _is_canonical_uuid(task_id):
        # Only the form we hand out: PostgreSQL and Python disagree on the exotic ones, and
        # two spellings of one id must never reach the owners as two different tasks.
        raise ApiError(404, "Not found", f"task {task_id} not found")
    timeout = state.settings.read_your_writes_timeout_s
    await state.watch.reach(state.watch.written, timeout)
    task = await read(state.pool, workspace, task_id)
    if task is None:
        # Possibly written through another gateway replica: wait for the log's head once.
        head = await state.head()
        if await state.watch.reach(head, timeout):
            task = await read(state.pool, workspace, task_id)
    if task is None:
        raise ApiError(404, "Not found", f"task {task_id} not found")
    return task


def _is_canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


async def _wait_for_status_change(state: GatewayState, workspace: str, task_id: str, status: str) -> None:
    async def current() -> str | None:
        return await task_reads.task_status(state.pool, workspace, task_id)

    await state.watch.status_change(task_id, status, current, state.settings.read_your_writes_timeout_s)


def document(openapi: OpenAPI) -> None:
    """A review's feedback is required for reject and revise: the rule the Struct cannot state."""
    components = openapi.components.schemas if openapi.components and openapi.components.schemas else {}
    review = components["ReviewDecision"]
    assert isinstance(review, Schema)
    review.schema_if, review.then = as_spec(FEEDBACK_REQUIRED["if"]), as_spec(FEEDBACK_REQUIRED["then"])
