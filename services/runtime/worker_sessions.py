"""The sessions of container workers (spec 003's `fly` runner), made and stopped on the
executor's command: the runtime is the single writer of agent sessions, and the executor, which
starts a container per run, needs one for each container to claim its run with.

A worker's session is a root session of the run's workspace that may claim and nothing more: no
permissions, no spawn budget, and a TTL, so a session whose container vanished without a word
stops anyway. Its token is in the reply only (for the container's environment), never in an event.
"""

from __future__ import annotations

import uuid

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CloseWorkerSession, CommandError, CommandReply, OpenWorkerSession, WorkerSessionReply
from libs.domain.agent_session import STOPPED, AgentSession
from libs.eventstore.store import EventStore
from libs.leases.clock import now_ms

COMPLETED = "completed"  # the session's stop reason: its container's work is over


def open_worker_session(raw: bytes, store: EventStore) -> WorkerSessionReply:
    try:
        command = msgspec.json.decode(raw, type=OpenWorkerSession)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return WorkerSessionReply(error=CommandError(400, "invalid_request", str(exc)))
    session, token = AgentSession.create(
        command.workspace_id,
        command.name,
        command.agent_type,
        command.model,
        command.provider,
        [command.agent_type],
        ttl_expires_at=now_ms() + command.ttl_s * 1000,
    )
    store.save([session])
    return WorkerSessionReply(session_id=str(session.id), token=token)


def close_worker_session(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=CloseWorkerSession)
        session_id = uuid.UUID(command.session_id)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    for _ in range(3):
        session = store.load(session_id)
        if not isinstance(session, AgentSession) or session.workspace_id != command.workspace_id:
            return CommandReply(error=CommandError(404, "not_found", f"session {command.session_id} not found"))
        if session.state == STOPPED:
            return CommandReply(status=STOPPED)  # stopped already (its TTL, or an earlier close)
        session.stop(COMPLETED, command.detail)
        try:
            return CommandReply(seq=store.save([session]), status=STOPPED)
        except IntegrityError:
            continue  # its TTL stopped it meanwhile: read it again
    return CommandReply(error=CommandError(409, "session_changed", f"session {command.session_id} kept changing"))
