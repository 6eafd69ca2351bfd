"""Spec 002's task routes (`/api/agent/tasks/*`): an agent session claims the oldest queued run
it may take (`claim-next`), then heartbeats, completes, fails or releases it under the lease,
presenting the claim token in each body. Every refusal is the diagnostic envelope, and changes
nothing. And the files a claim names, by digest (`/api/agent/files/{digest}`)."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any, NamedTuple

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from contracts.agent_tasks import (
    Claimed,
    ClaimNext,
    ClaimView,
    Complete,
    Fail,
    Heartbeat,
    LeaseAnswer,
    Release,
)
from contracts.commands import ClaimRunCommand, LeaseCommand, LeaseReply
from contracts.files import DIGEST_PATTERN, FileContent
from contracts.subjects import CLAIM_RUN, UNDER_LEASE
from libs.agent.starting import Dispatch, dispatch_at
from libs.domain.agent_session import AgentSession
from libs.domain.run import STARTED, Run
from libs.eventstore.store import EventStore
from libs.leases.clock import now_ms
from libs.readmodels import lease_reads
from libs.web.commands import send
from libs.web.diagnostics import AgentError
from libs.web.openapi import ERRORS
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.lease_views import lease_view, run_input, run_view, task_channel, task_ref
from services.runtime.sessions import MAX_ACTIVE_LEASES
from services.runtime.state import RuntimeState, runtime_state

_DIGEST = re.compile(DIGEST_PATTERN)
UNDER_LEASE_ERRORS = {
    ERRORS: {
        **SESSION_ERRORS[ERRORS],
        403: "The session is stopped, or another session holds the run.",
        404: "No such run in the session's workspace.",
        409: "The claim token is not the run's, the run is no longer claimed, or its lease expired.",
        503: "The executor, which owns runs, did not answer in time.",
    }
}
COMPLETE_TIMEOUT_S = 90.0


@post(
    "/api/agent/tasks/claim-next",
    status_code=200,
    opt={ERRORS: {**SESSION_ERRORS[ERRORS], 409: "The session holds as many leases as it may."}},
    responses={204: ResponseSpec(data_container=None, description="No run the session may take is ready.")},
)
async def claim(request: Request[Any, Any, Any], data: JSONBody[ClaimNext]) -> Response[Claimed]:
    """Claims the oldest queued run the session may take, under a lease of `lease_ttl_seconds`;
    204 when none is ready (after waiting up to `wait_seconds` for one)."""
    state, session = runtime_state(request), session_of(request)
    async with state.claim_turns.turn(str(session.id)) as claimed_here:
        reply = await _claim_in_turn(state, session, data, claimed_here)
        if reply.run_id is not None:
            claimed_here.add(reply.run_id)
    if reply.run_id is None or reply.claim_token is None:
        return Response(None, status_code=204)  # type: ignore[arg-type]
    run, dispatch = await asyncio.to_thread(_claimed, state.store, reply.run_id)
    row = await asyncio.to_thread(lease_reads.task_row, state.store, run.task_id)
    channel = task_channel(run.workspace_id, run.task_id)
    view = ClaimView(
        task=task_ref(run, row),
        run=run_view(run, None, None, reply.queued_at),
        lease=lease_view(run, None, None),
        coordination_channel=channel,
        claim_token=reply.claim_token,
        input=run_input(dispatch.payload),
    )
    return Response(Claimed(claim=view), status_code=200)


async def _claim_in_turn(
    state: RuntimeState, session: AgentSession, data: ClaimNext, claimed_here: set[str]
) -> LeaseReply:
    """The owner's answer to the session's claim, within the session's lease limit."""
    held = await asyncio.to_thread(active_leases, state.store, str(session.id), claimed_here)
    if len(held) >= MAX_ACTIVE_LEASES:
        raise AgentError(
            409,
            "lease_limit_reached",
            f"the session holds {len(held)} lease(s), its limit: complete, fail or release one first",
            category="limit",
            evidence={"active_leases": held, "max_active_task_leases": MAX_ACTIVE_LEASES},
            suggested_command="POST /api/agent/spawn for a helper session to work in parallel",
        )
    details = session.details
    command = ClaimRunCommand(
        workspace_id=session.workspace_id,
        session_id=str(session.id),
        provider=details.provider,
        model=details.model,
        agent_types=wanted_types(details.capabilities, [*data.agent_types, *data.capabilities]),
        lease_ttl_s=data.lease_ttl_seconds,
        run_id=data.run_id,
    )
    deadline = time.monotonic() + data.wait_seconds
    while True:
        # Taken before asking, so a run queued while the owner looks wakes the wait below.
        woken = state.queue_changed.next()
        # A second short of the wait for the answer: a claim made later would reach nobody.
        in_time = now_ms() + int((state.settings.command_timeout_s - 1) * 1000)
        reply = await send_lease(state, CLAIM_RUN, msgspec.structs.replace(command, deadline_ms=in_time))
        left = deadline - time.monotonic()
        if reply.run_id is not None or left <= 0:
            return reply
        await woken.wait(left)


def wanted_types(capabilities: list[str], asked: list[str]) -> list[str] | None:
    """The agent types a claim may take: those asked for, within the session's capabilities
    when it declared any; None for any type."""
    if asked and capabilities:
        return [t for t in asked if t in capabilities]
    return asked or capabilities or None


def _claimed(store: EventStore, run_id: str) -> tuple[Run, Dispatch]:
    """The run the owner just claimed, and its dispatch (what the agent is to do)."""
    run = store.load(uuid.UUID(run_id))
    dispatch = dispatch_at(store, run.dispatch_seq or 0) if isinstance(run, Run) else None
    if not isinstance(run, Run) or dispatch is None:
        raise AgentError(503, "service_unavailable", f"run {run_id} was claimed but cannot be read back; try again")
    return run, dispatch


async def send_lease(state: RuntimeState, subject: str, command: msgspec.Struct) -> LeaseReply:
    """The owner's answer to a lease command; its refusal as the diagnostic envelope."""
    # A `complete` waits on the self-heal checks, which may collect tests (up to a minute).
    timeout = COMPLETE_TIMEOUT_S if isinstance(command, LeaseCommand) and command.verb == "complete" else None
    reply = await send(state.broker, subject, command, timeout or state.settings.command_timeout_s, LeaseReply)
    if reply.refused is not None:
        r = reply.refused
        category = "lease" if r.status == 409 else None
        raise AgentError(
            r.status, r.code, r.message, category=category, evidence=r.evidence, suggested_command=r.suggested_command
        )
    return reply


class HeldLease(NamedTuple):
    run: Run
    lease_until: int  # ms since the epoch: the claim's end or its last heartbeat's
    heartbeat_at: int | None


def held_leases(store: EventStore, session_id: str) -> list[HeldLease]:
    """The leases the session holds now, oldest claim first: the read model's, confirmed by the
    runs themselves (a run completed a moment ago may not have reached the read model yet)."""
    rows = lease_reads.held_by(store, session_id, now_ms())
    runs = store.load_many(r["run_id"] for r in rows)
    held = []
    for row in rows:
        run = runs.get(row["run_id"])
        if isinstance(run, Run) and run.status == STARTED:
            held.append(HeldLease(run, row["lease_until"], row["heartbeat_at"]))
    return held


def active_leases(store: EventStore, session_id: str, claimed_here: set[str]) -> list[str]:
    """The runs the session holds now, by id: those the read models show, and those it claimed
    through this process that they may not show yet (each confirmed by the run itself)."""
    held = {str(h.run.id) for h in held_leases(store, session_id)}
    recent = store.load_many(uuid.UUID(i) for i in claimed_here - held)
    claimed_here.intersection_update(held | {str(i) for i, run in recent.items() if run.status == STARTED})
    return sorted(held | claimed_here)


async def _under_lease(request: Request[Any, Any, Any], run_id: str, verb: str, **fields: Any) -> LeaseAnswer:
    state, session = runtime_state(request), session_of(request)
    command = LeaseCommand(
        verb=verb, workspace_id=session.workspace_id, session_id=str(session.id), run_id=run_id, **fields
    )
    reply = await send_lease(state, UNDER_LEASE, command)
    run = await asyncio.to_thread(state.store.load, uuid.UUID(reply.run_id or run_id))
    if not isinstance(run, Run):
        raise AgentError(503, "service_unavailable", f"run {run_id} cannot be read back; try again")
    return LeaseAnswer(
        lease=lease_view(run, reply.lease_until, reply.heartbeat_at),
        run=run_view(run, reply.lease_until, reply.heartbeat_at),
    )


@post("/api/agent/tasks/{run_id:str}/heartbeat", status_code=200, opt=UNDER_LEASE_ERRORS)
async def heartbeat(request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[Heartbeat]) -> LeaseAnswer:
    """Extends the lease: `lease_until` becomes now plus `lease_ttl_seconds` (the claim's length
    when not given). Not an event: heartbeats move the lease's end in a table of their own."""
    return await _under_lease(
        request, run_id, "heartbeat", claim_token=data.claim_token, lease_ttl_s=data.lease_ttl_seconds
    )


@post("/api/agent/tasks/{run_id:str}/complete", status_code=200, opt=UNDER_LEASE_ERRORS)
async def complete(request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[Complete]) -> LeaseAnswer:
    """Ends the run with its result: the files written (path -> content) and deleted, a summary,
    the usage. The self-heal checks judge it as they judge the executor's runs: the run fails,
    retryable, when they find problems (`run.error` lists them)."""
    result = msgspec.to_builtins(data.result)
    return await _under_lease(request, run_id, "complete", claim_token=data.claim_token, result=result)


@post("/api/agent/tasks/{run_id:str}/fail", status_code=200, opt=UNDER_LEASE_ERRORS)
async def fail(request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[Fail]) -> LeaseAnswer:
    """Ends the run as failed: retried (a new attempt) while the task's retries last, when `retryable`."""
    usage = msgspec.to_builtins(data.usage)
    return await _under_lease(
        request, run_id, "fail", claim_token=data.claim_token, error=data.error, retryable=data.retryable, usage=usage
    )


@post("/api/agent/tasks/{run_id:str}/release", status_code=200, opt=UNDER_LEASE_ERRORS)
async def release(request: Request[Any, Any, Any], run_id: FromPath[str], data: JSONBody[Release]) -> LeaseAnswer:
    """Gives the run back: it goes back to the queue as it was, and no attempt is counted."""
    usage = msgspec.to_builtins(data.usage)
    return await _under_lease(request, run_id, "release", claim_token=data.claim_token, reason=data.reason, usage=usage)


@get("/api/agent/files/{digest:str}", opt={ERRORS: {**SESSION_ERRORS[ERRORS], 404: "No such file here."}})
async def file_by_digest(request: Request[Any, Any, Any], digest: FromPath[str]) -> FileContent:
    """A file a claim names, by digest, from the session's workspace."""
    state, session = runtime_state(request), session_of(request)
    found = {}
    if _DIGEST.match(digest):
        found = await asyncio.to_thread(state.store.blobs.load, session.workspace_id, [digest])
    if digest not in found:
        raise AgentError(404, "file_not_found", f"file {digest} not found")
    content = found[digest]
    return FileContent(digest=digest, size=len(content.encode()), content=content)


ROUTES = [claim, heartbeat, complete, fail, release, file_by_digest]
