"""Spec 000 `GET /tasks/{id}/stream`: a task's logs over a WebSocket, as they happen.

The first message holds every entry captured so far (possibly none); then each message holds
the entries that arrived together. When the task reaches a terminal status the last entries
are sent and the socket closes with 1000. Each message is a `LogsMessage`:
`{"type": "logs", "data": [LogEntry, ...]}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi.spec import OpenAPI, OpenAPIResponse, OpenAPIType, Operation, Parameter, PathItem, Schema
from litestar.params import FromPath
from litestar.status_codes import WS_1000_NORMAL_CLOSURE, WS_1011_INTERNAL_ERROR, WS_1013_TRY_AGAIN_LATER

from contracts.logs import LogEntry, LogsMessage
from libs.bus.logs import LogTail
from libs.domain.task import TERMINAL
from libs.observability.metrics import LIVE_LOG_CONNECTIONS
from libs.readmodels import task_reads
from libs.web.auth import authenticate, key_checker
from libs.web.errors import ApiError
from services.gateway.routes import find_task
from services.gateway.state import GatewayState, gateway_state

log = logging.getLogger(__name__)

PATH = "/tasks/{task_id:str}/stream"
# 4000 + the HTTP status, as a WebSocket cannot answer 404 once it is open.
WS_4404_NOT_FOUND = 4404
# The projector announces status changes; a notice lost with the LISTEN connection would
# leave a socket open after its task ended, so the status is also read this often.
STATUS_RECHECK_S = 30.0
REVOCATION_CHECK_S = 15.0

_encoder = msgspec.json.Encoder()


@websocket(PATH)
async def task_logs(socket: WebSocket[Any, Any, Any], task_id: FromPath[str]) -> None:
    state = gateway_state(socket)
    await socket.accept()
    try:
        workspace = (await authenticate(socket)).workspace_id
    except ApiError as exc:
        # 4000 + the HTTP status: 4401 without a valid key, 4403 for a revoked one.
        await socket.close(4000 + exc.status, exc.message)
        return
    try:
        # The same lookup as GET /tasks/{id}: canonical ids only, the key's workspace only,
        # after the read models have reached this gateway's writes.
        await find_task(state, workspace, task_id, task_reads.task_status)
    except ApiError:
        await socket.close(WS_4404_NOT_FOUND, "Not found")
        return
    tail = LogTail(state.js, workspace, task_id)
    ended = asyncio.create_task(_until_ended(state, workspace, task_id))
    # A key revoked while the socket is open ends it (as it ends the SSE streams).
    gone = asyncio.create_task(_until_gone_or_revoked(socket, key_checker(socket)))
    LIVE_LOG_CONNECTIONS.inc()
    try:
        await _send(socket, await tail.open())
        await _follow(socket, tail, ended, gone)
    except (WebSocketDisconnect, OSError):
        pass  # the client left while we were sending
    except Exception:
        log.exception("live logs of task %s failed", task_id)
        with contextlib.suppress(Exception):
            await socket.close(WS_1011_INTERNAL_ERROR, "Internal error")
    finally:
        for task in (ended, gone):
            task.cancel()
        await asyncio.gather(ended, gone, return_exceptions=True)
        await tail.close()
        LIVE_LOG_CONNECTIONS.dec()


async def _until_gone_or_revoked(socket: WebSocket[Any, Any, Any], still_valid: Callable[[], Awaitable[bool]]) -> None:
    disconnected = asyncio.create_task(_until_disconnected(socket))
    try:
        while True:
            done, _ = await asyncio.wait({disconnected}, timeout=REVOCATION_CHECK_S)
            if done:
                return
            if not await still_valid():
                with contextlib.suppress(Exception):
                    await socket.close(4403, "this API key was revoked")
                return
    finally:
        disconnected.cancel()


async def _follow(
    socket: WebSocket[Any, Any, Any], tail: LogTail, ended: asyncio.Task[None], gone: asyncio.Task[None]
) -> None:
    while True:
        arrived = asyncio.create_task(tail.wait())
        try:
            done, _ = await asyncio.wait({arrived, ended, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrived.cancel()
        if gone in done:
            return
        if ended in done:
            ended.result()  # raises if watching for the end failed
            await _send(socket, await tail.rest(), always=False)
            await socket.close(WS_1000_NORMAL_CLOSURE, "Task ended")
            return
        await _send(socket, tail.take(), always=False)
        if tail.overflowed:
            await socket.close(WS_1013_TRY_AGAIN_LATER, "Fell behind; reconnect")
            return


async def _send(socket: WebSocket[Any, Any, Any], entries: list[LogEntry], *, always: bool = True) -> None:
    if entries or always:
        await socket.send_text(_encoder.encode(LogsMessage(data=entries)).decode())


async def _until_ended(state: GatewayState, workspace: str, task_id: str) -> None:
    async def current() -> str | None:
        return await task_reads.task_status(state.pool, workspace, task_id)

    while await state.watch.status_reaches(task_id, TERMINAL.__contains__, current, STATUS_RECHECK_S) not in TERMINAL:
        pass


async def _until_disconnected(socket: WebSocket[Any, Any, Any]) -> None:
    """Returns when the client goes away; what it sends meanwhile is ignored."""
    try:
        while (await socket.receive())["type"] != "websocket.disconnect":
            pass
    except WebSocketDisconnect:
        return


def document(openapi: OpenAPI) -> None:
    """Adds the route to the OpenAPI document: Litestar leaves WebSocket routes out."""
    openapi.paths = openapi.paths or {}
    openapi.paths["/tasks/{task_id}/stream"] = PathItem(
        get=Operation(
            operation_id="TasksTaskIdStreamTaskLogs",
            summary="Task logs, live (WebSocket)",
            description=(
                "Upgrades to a WebSocket. The server sends text messages, each a LogsMessage "
                '`{"type": "logs", "data": [LogEntry, ...]}` (contracts/schemas/LogsMessage.schema.json): '
                "first every entry captured so far (possibly none), then new entries as they arrive. "
                "When the task reaches completed, failed or cancelled, the last entries are sent and the "
                'socket closes with 1000. An unknown task id closes with 4404 "Not found"; a client that '
                "reads slower than the task logs is closed with 1013 and reconnects."
            ),
            parameters=[
                Parameter(name="task_id", param_in="path", required=True, schema=Schema(type=OpenAPIType.STRING))
            ],
            responses={
                "101": OpenAPIResponse(description="Switching Protocols: the log stream follows"),
                "426": OpenAPIResponse(description="Asked without `Upgrade: websocket`: only a WebSocket is served"),
            },
        )
    )
