"""Appending a message to a channel: the checks that need no read of it, then the Channel
aggregate loaded, changed and saved by one writer at a time.

Senders of one channel take turns: in the process on an asyncio lock, across replicas on a
PostgreSQL advisory lock held in a transaction for the append (released at its end, and with
the session if the process dies). Without them, concurrent senders raced on the aggregate's
next version and most of them had to read the channel again and again (20 senders at once:
four in ten gave up)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.persistence import IntegrityError
from psycopg_pool import AsyncConnectionPool

from contracts.agent_runtime import OutgoingMetadata
from contracts.payloads.channel import ChannelMessageSent
from libs.domain.agent_session import AgentSession
from libs.domain.channel import KINDS, MAX_BODY_BYTES, REPLY_TO, Channel, ChannelName, MessageRefused, check_sizes
from libs.readmodels.schema import CHANNEL_LOCK_CLASS
from libs.web.diagnostics import AgentError
from services.runtime.state import RuntimeState

# With the locks, a conflict means a writer that does not take them: try again, a few times.
WRITE_ATTEMPTS = 3
_local: weakref.WeakValueDictionary[uuid.UUID, asyncio.Lock] = weakref.WeakValueDictionary()


@dataclass(frozen=True)
class Target:
    """A channel of the caller's workspace, checked to exist (its task or run does)."""

    name: ChannelName
    id: uuid.UUID
    task_id: str
    run_id: str | None


def check(metadata: OutgoingMetadata, body: Any, target: Target) -> None:
    """What is refused before the channel is read: the message's kind, its size, and metadata
    naming another channel, task or run than the channel's."""
    if metadata.message_kind not in KINDS:
        allowed = ", ".join(KINDS)
        raise AgentError(
            400,
            "message_kind_not_allowed",
            f"metadata.message_kind: {metadata.message_kind!r} is not a kind a channel takes ({allowed})",
            evidence={"message_kind": metadata.message_kind, "allowed_message_kinds": list(KINDS)},
            suggested_command=f"send again with metadata.message_kind one of {allowed}",
        )
    for field, given, own in (
        ("coordination_channel_id", metadata.coordination_channel_id, target.name.name),
        ("task_id", metadata.task_id, target.task_id),
        ("run_id", metadata.run_id, target.run_id),
    ):
        if given is not None and given != own:
            raise AgentError(
                400,
                "metadata_mismatch",
                f"metadata.{field}: {given!r} is not the channel's ({own!r})",
                evidence={"field": f"metadata.{field}", "given": given, "channel_value": own},
                suggested_command=f"leave metadata.{field} out: the channel sets it",
            )
    try:
        check_sizes(body, metadata.ext)
    except MessageRefused as exc:
        raise refused(exc) from None


async def append(
    state: RuntimeState,
    session: AgentSession,
    target: Target,
    metadata: OutgoingMetadata,
    body: Any,
    reply_to: str | None,
) -> tuple[ChannelMessageSent, datetime]:
    """Appends the message to the channel (opening it with its first); the message and its time."""
    async with _held(state.pool, target.id):
        for _ in range(WRITE_ATTEMPTS):
            channel = await asyncio.to_thread(state.channel_store.load, target.id)
            if not isinstance(channel, Channel):
                if reply_to is not None:
                    raise no_message(reply_to)
                channel = Channel.open(session.workspace_id, target.name, target.task_id, str(session.id))
            try:
                sent = channel.send(
                    str(session.id), metadata.message_kind, body, metadata.ext, metadata.correlation_id, reply_to
                )
            except MessageRefused as exc:
                raise refused(exc) from None
            try:
                await asyncio.to_thread(state.channel_store.save, [channel])
            except IntegrityError:
                continue
            return sent, channel.modified_on
    raise AgentError(503, "service_unavailable", f"{target.name.name} is busy: send again")


@contextlib.asynccontextmanager
async def _held(pool: AsyncConnectionPool, channel_id: uuid.UUID) -> AsyncIterator[None]:
    lock = _local.setdefault(channel_id, asyncio.Lock())
    async with lock:  # this process's senders queue here, not on connections
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (CHANNEL_LOCK_CLASS, lock_key(channel_id)))
            yield


def lock_key(channel_id: uuid.UUID) -> int:
    """A channel as a 32-bit lock key (its id is a hash already): two that share one only wait
    for each other."""
    return int.from_bytes(channel_id.bytes[:4], "big", signed=True)


def no_message(message_id: str) -> AgentError:
    return AgentError(
        404,
        "message_not_found",
        f"no message {message_id} in this workspace: a message id is <channel>:<n>, as recv returns it",
        evidence={REPLY_TO: message_id},
        suggested_command="GET /api/agent/channels/{channel}/recv",
    )


def refused(exc: MessageRefused) -> AgentError:
    status = 404 if exc.code == "message_not_found" else 400
    hint = {
        "message_too_large": f"send a body of at most {MAX_BODY_BYTES} bytes as JSON: large content goes in files",
        "correlation_mismatch": "leave metadata.correlation_id out of a reply: it is the thread's",
    }.get(exc.code)
    return AgentError(status, exc.code, str(exc), evidence=exc.evidence, suggested_command=hint)
