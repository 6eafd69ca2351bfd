"""Spec 000 `GET /tasks/{id}/stream`: a task's logs over a WebSocket, as they happen.

The lines are a projection of the task's events (`libs.readmodels.task_log`). The first message
holds every line so far (possibly none): `rm_task_log` up to the projector's position, then the
lines of the events the projector has not reached yet, read from the log itself. Then each
message holds the lines of the events that arrived together on `EVENTS` (`logfollower`), past the
last seq sent: no gap, no duplicate. When the task reaches a terminal status its last lines are
read from `rm_task_log` and the socket closes with 1000. Each message is a `LogsMessage`:
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

from contracts.events import task_of, typed
from contracts.logs import LogEntry, LogsMessage
from libs.domain.task import TERMINAL
from libs.observability.logs import configured_secrets, redact
from libs.observability.metrics import LIVE_LOG_CONNECTIONS
from libs.readmodels import task_log_reads, task_reads
from libs.readmodels.task_log import LOGGED, log_entries
from libs.web.auth import authenticate, key_checker
from libs.web.errors import ApiError
from services.gateway.logfollower import LogReader
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
PAGE = 1000  # events read from the log per query, past the projector's position

_encoder = msgspec.json.Encoder()

Lines = list[tuple[int, LogEntry]]  # each line with the seq of the event it comes from


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
    # Registered before the backlog is read: what is published meanwhile reaches the reader.
    reader = await state.logs.register(workspace, task_id)
    ended = asyncio.create_task(_until_ended(state, workspace, task_id))
    # A key revoked while the socket is open ends it (as it ends the SSE streams).
    gone = asyncio.create_task(_until_gone_or_revoked(socket, key_checker(socket)))
    LIVE_LOG_CONNECTIONS.inc()
    secrets = configured_secrets()
    try:
        lines, last = await _backlog(state, workspace, task_id)
        await _send(socket, lines, secrets)
        await _follow(socket, state, reader, last, (ended, gone), secrets)
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
        await state.logs.unregister(reader)
        LIVE_LOG_CONNECTIONS.dec()


async def _backlog(state: GatewayState, workspace: str, task_id: str) -> tuple[Lines, int]:
    """Every line of the task so far, and the seq they are complete up to: the read model's up to
    the projector's position, then those of the events past it, from the log itself (the relay
    may have published them before the reader registered)."""
    lines, position = await task_log_reads.task_log(state.pool, workspace, task_id)
    cursor = position
    while True:
        events = await asyncio.to_thread(state.store.read, cursor, PAGE)
        for e in events:
            if e.type in LOGGED and e.workspace_id == workspace and task_of(e) == task_id:
                lines += [(e.seq, entry) for entry in log_entries(typed(e))]
        if events:
            cursor = events[-1].seq
        if len(events) < PAGE:
            return lines, cursor


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
    socket: WebSocket[Any, Any, Any],
    state: GatewayState,
    reader: LogReader,
    last: int,
    stops: tuple[asyncio.Task[None], asyncio.Task[None]],
    secrets: list[str],
) -> None:
    """Sends the lines after seq `last` as they arrive, until the task ends (`stops[0]`) or the
    client goes or its key is revoked (`stops[1]`)."""
    ended, gone = stops
    while True:
        arrived = asyncio.create_task(reader.wait())
        try:
            done, _ = await asyncio.wait({arrived, ended, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            arrived.cancel()
        if gone in done:
            return
        if ended in done:
            ended.result()  # raises if watching for the end failed
            # The projector has the task's end, so its lines up to it are in the read model,
            # whether or not the bus has brought them here yet.
            rest, _ = await task_log_reads.task_log(state.pool, reader.workspace_id, reader.task_id, last)
            await _send(socket, rest, secrets, always=False)
            await socket.close(WS_1000_NORMAL_CLOSURE, "Task ended")
            return
        # Never twice: what the backlog had, or what a consumer reset delivers again.
        lines = [(seq, entry) for seq, entry in reader.take() if seq > last]
        if lines:
            last = lines[-1][0]
        await _send(socket, lines, secrets, always=False)
        if reader.overflowed:
            await socket.close(WS_1013_TRY_AGAIN_LATER, "Fell behind; reconnect")
            return


async def _send(socket: WebSocket[Any, Any, Any], lines: Lines, secrets: list[str], *, always: bool = True) -> None:
    if lines or always:
        entries = [_masked(entry, secrets) for _, entry in lines]
        await socket.send_text(_encoder.encode(LogsMessage(data=entries)).decode())


def _masked(entry: LogEntry, secrets: list[str]) -> LogEntry:
    """The read model masks what is shaped like a key (the same for every process, so a rebuild
    writes the same rows); the keys this process was given are masked here too."""
    message = redact(entry.message, secrets) if secrets else entry.message
    return entry if message == entry.message else msgspec.structs.replace(entry, message=message)


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
