"""Spec 003's tasks family, on spec 000's tasks: list them, create one, follow their status
changes, read one's status, retry a failed or cancelled one, stop one that has not finished.

Reads come from the read models, once they have reached what the log held when the request
came (a status a client saw on the events feed is never older here); stop and retry are
commands to the owner of Tasks, the planner, which decides from the event store.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody, QueryParameter

from contracts.commands import RetryTaskCommand, StopTaskCommand
from contracts.repos import MAX_OWNER, MAX_REPO, REPOSITORY_PATTERN
from contracts.subjects import RETRY_TASK, STOP_TASK
from contracts.task_feed import DEFAULT_LIMIT, MAX_LIMIT, TASK_ID_PATTERN, TaskHistory, TaskPage, TaskStatusReport
from contracts.tasks import NO_NUL, AgentType, SubmitTasks, TaskIds, TaskStatus
from libs.readmodels import task_listing
from libs.readmodels.task_listing import TaskFilter
from libs.web import paging
from libs.web.auth import caller
from libs.web.commands import send
from services.gateway.routes import find_task, submitted
from services.gateway.state import GatewayState, gateway_state

PATH = "/api/tasks"
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Items per page.")]
Cursor = Annotated[
    str | None,
    QueryParameter(max_length=paging.MAX_CURSOR, description="`nextCursor` of the page before; none for the first."),
]


@get(PATH)
async def list_tasks(
    request: Request[Any, Any, Any],
    status: Annotated[
        list[TaskStatus] | None, QueryParameter(description="Only tasks in this status; repeat it for several.")
    ] = None,
    repository: Annotated[
        str | None,
        QueryParameter(
            max_length=MAX_OWNER + 1 + MAX_REPO,
            pattern=REPOSITORY_PATTERN,
            description="Only tasks on `owner/name` (any case).",
        ),
    ] = None,
    # Named as the wire names them, so a refusal names what the client sent.
    agentType: Annotated[AgentType | None, QueryParameter(description="Only tasks of this agent type.")] = None,
    since: Annotated[
        str | None,
        QueryParameter(
            max_length=64,
            pattern=NO_NUL,
            description="Only tasks submitted at or after this time: epoch milliseconds, or an ISO 8601 time "
            "(`2026-01-31T12:00:00Z`; UTC when it has no offset).",
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> TaskPage:
    state, workspace = gateway_state(request), caller(request).workspace_id
    owner, _, name = (repository or "").partition("/")
    only = TaskFilter(
        statuses=[s.value for s in status] if status else None,
        repository=(owner, name) if repository else None,
        agent_type=agentType.value if agentType else None,
        since=paging.since_ms(since) if since is not None else None,
    )
    after = paging.tasks_cursor(cursor) if cursor is not None else None
    await state.reach_head()
    # One more than the page: whether another page follows, without counting them all.
    found = await task_listing.tasks(state.pool, workspace, only, after, limit + 1)
    page = found[:limit]
    more = len(found) > limit
    next_cursor = paging.encode_cursor(paging.TASKS, page[-1]["queuedAt"], page[-1]["id"]) if more else None
    return msgspec.convert({"tasks": page, "nextCursor": next_cursor}, TaskPage)


@post(PATH, status_code=201)
async def create_tasks(request: Request[Any, Any, Any], data: JSONBody[SubmitTasks]) -> TaskIds:
    return await submitted(request, data)


@get(PATH + "/history")
async def task_history(
    request: Request[Any, Any, Any],
    taskId: Annotated[
        str | None, QueryParameter(pattern=TASK_ID_PATTERN, description="Only this task's status changes.")
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> TaskHistory:
    state, workspace = gateway_state(request), caller(request).workspace_id
    before = paging.history_cursor(cursor) if cursor is not None else None
    await state.reach_head()
    # Another workspace's task, like one that does not exist, has no transitions here.
    found = await task_listing.history(state.pool, workspace, taskId, before, limit + 1)
    page = found[:limit]
    next_cursor = paging.encode_cursor(paging.HISTORY, page[-1]["seq"]) if len(found) > limit else None
    return msgspec.convert({"transitions": page, "nextCursor": next_cursor}, TaskHistory)


@get(PATH + "/{task_id:str}/status")
async def task_status(request: Request[Any, Any, Any], task_id: FromPath[str]) -> TaskStatusReport:
    state = gateway_state(request)
    await state.reach_head()
    return await _report(state, caller(request).workspace_id, task_id)


@post(
    PATH + "/{task_id:str}/stop",
    status_code=200,
    opt={"errors": {409: "The task has finished (`completed`, `failed`, `cancelled`) or is `approved`."}},
)
async def stop_task(request: Request[Any, Any, Any], task_id: FromPath[str]) -> TaskStatusReport:
    state, workspace = gateway_state(request), caller(request).workspace_id
    await find_task(state, workspace, task_id, task_listing.task_summary)
    command = StopTaskCommand(workspace_id=workspace, task_id=task_id)
    reply = await send(state.broker, STOP_TASK, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    return await _report(state, workspace, task_id)


@post(
    PATH + "/{task_id:str}/retry",
    status_code=201,
    responses={200: ResponseSpec(TaskStatusReport, description="The task was retried already: its retry, as it is.")},
    opt={"errors": {409: "The task is not `failed` or `cancelled`, or it was revised (its revision goes on)."}},
)
async def retry_task(request: Request[Any, Any, Any], task_id: FromPath[str]) -> Response[TaskStatusReport]:
    state, workspace = gateway_state(request), caller(request).workspace_id
    await find_task(state, workspace, task_id, task_listing.task_summary)
    command = RetryTaskCommand(workspace_id=workspace, task_id=task_id)
    reply = await send(state.broker, RETRY_TASK, command, state.settings.command_timeout_s)
    state.watch.wrote(reply.seq)
    (retry_id,) = reply.task_ids
    report = await _report(state, workspace, retry_id)
    return Response(report, status_code=201 if reply.status == "created" else 200)


async def _report(state: GatewayState, workspace: str, task_id: str) -> TaskStatusReport:
    found = await find_task(state, workspace, task_id, task_listing.task_summary)
    return msgspec.convert(found, TaskStatusReport)


ROUTES = [list_tasks, create_tasks, task_history, task_status, stop_task, retry_task]
