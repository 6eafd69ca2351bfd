"""Coordination channels (spec 002): a channel per task (`task_<task id>`) and per run
(`run_<run id>`) of the caller's workspace, where any of its sessions reads and posts. Messages
are `channel.message_sent` events of the `Channel` aggregate (the runtime service is its single
writer); `recv` and `context`'s inbox summary read them from the read models, each session from
its own cursor. Another workspace's channel is as unknown as none."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import JSONBody, PathParameter, QueryParameter

from contracts.agent_runtime import ChannelList, NewMessage, NewReply, ReceivedMessages, SentMessage
from libs.domain.channel import TASK, channel_id, parse_name, split_message_id
from libs.domain.run import Run
from libs.readmodels import channel_reads, task_reads
from libs.readmodels.channel_reads import MessageRow
from libs.web.diagnostics import AgentError
from libs.web.openapi import ERRORS
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.channel_views import channel_view, message_view, sent_row
from services.runtime.channel_writes import Target, append, check, no_message
from services.runtime.state import RuntimeState, runtime_state

LIST = "GET /api/agent/channels"
ChannelParameter = Annotated[str, PathParameter(description="Coordination channel id: task_<task id> or run_<run id>")]
CHANNEL_LIST_LIMIT = 200
DEFAULT_LIMIT, MAX_LIMIT = 50, 500
# The longest a `recv?wait=true` holds the request: under the idle timeouts of common proxies.
WAIT_S = 25.0
WRONG_CHANNEL = {
    400: "The body breaks the schema, or the channel does not take the message: its kind, its size or its "
    "metadata. `diagnostic.code` says which."
}


@get("/api/agent/channels", opt=SESSION_ERRORS)
async def list_channels(request: Request[Any, Any, Any]) -> ChannelList:
    """The workspace's channels, latest activity first: those with messages, then those of its
    unfinished tasks."""
    state, session = runtime_state(request), session_of(request)
    rows = await channel_reads.channels(state.pool, session.workspace_id, CHANNEL_LIST_LIMIT)
    return ChannelList(channels=[channel_view(session.workspace_id, row) for row in rows])


@post("/api/agent/channels/{channel:str}/send", status_code=201, opt={ERRORS: SESSION_ERRORS[ERRORS] | WRONG_CHANNEL})
async def send(request: Request[Any, Any, Any], channel: ChannelParameter, data: JSONBody[NewMessage]) -> SentMessage:
    """Posts a message on the channel, starting a thread (its correlation id: the one given,
    or a new one)."""
    state, session = runtime_state(request), session_of(request)
    target = await _target(state, session.workspace_id, channel)
    check(data.metadata, data.body, target)
    sent, at = await append(state, session, target, data.metadata, data.body, reply_to=None)
    return SentMessage(message=message_view(sent_row(sent, at)))


@post(
    "/api/agent/channels/reply",
    status_code=201,
    opt={ERRORS: SESSION_ERRORS[ERRORS] | WRONG_CHANNEL | {404: "No such message in this workspace."}},
)
async def reply(request: Request[Any, Any, Any], data: JSONBody[NewReply]) -> SentMessage:
    """Answers a message: on its channel, to its sender, in its thread (its correlation id)."""
    state, session = runtime_state(request), session_of(request)
    asked = data.reply_to_message_id
    found = split_message_id(asked)
    if found is None:
        raise no_message(asked)
    target = await _target(state, session.workspace_id, found[0], missing=no_message(asked))
    check(data.metadata, data.body, target)
    sent, at = await append(state, session, target, data.metadata, data.body, reply_to=asked)
    return SentMessage(message=message_view(sent_row(sent, at)))


@get("/api/agent/channels/{channel:str}/recv", opt=SESSION_ERRORS)
async def recv(
    request: Request[Any, Any, Any],
    channel: ChannelParameter,
    wait: Annotated[
        bool, QueryParameter(description=f"With no message yet, wait for the next (up to {WAIT_S:.0f} s)")
    ] = False,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="At most this many messages")] = (
        DEFAULT_LIMIT
    ),
) -> ReceivedMessages:
    """The channel's messages the session has not received yet (others', oldest first), at most
    `limit`; the session's cursor moves past them. With `wait=true` and none yet, the answer
    comes with the next message (within milliseconds of its send), or empty after a while."""
    state, session = runtime_state(request), session_of(request)
    target = await _target(state, session.workspace_id, channel)
    key = str(target.id)

    async def look() -> list[MessageRow]:
        return await channel_reads.receive(state.pool, str(session.id), session.workspace_id, key, limit)

    rows = await state.waits.until_some(key, look, WAIT_S) if wait else await look()
    return ReceivedMessages(messages=[message_view(row) for row in rows])


async def _target(state: RuntimeState, workspace_id: str, name: str, missing: AgentError | None = None) -> Target:
    """The workspace's channel of that name: one a message opened, or one of its tasks or runs."""
    parsed = parse_name(name)
    if parsed is not None:
        opened = await channel_reads.channel(state.pool, workspace_id, parsed.name)
        if opened is not None:
            return Target(parsed, channel_id(workspace_id, parsed.name), opened.task_id, opened.run_id)
        if parsed.scope == TASK:
            if await task_reads.task_status(state.pool, workspace_id, parsed.target) is not None:
                return Target(parsed, channel_id(workspace_id, parsed.name), parsed.target, None)
        else:
            run = await asyncio.to_thread(state.store.load, uuid.UUID(parsed.target))
            if isinstance(run, Run) and run.workspace_id == workspace_id:
                return Target(parsed, channel_id(workspace_id, parsed.name), run.task_id, parsed.target)
    raise missing or AgentError(
        404,
        "channel_not_found",
        f"no channel {name} in this workspace: a channel is task_<task id> or run_<run id> of one of its tasks",
        evidence={"channel": name},
        suggested_command=LIST,
    )
