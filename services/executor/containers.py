"""Container workers (spec 003, a task configured for the `fly` runner): each dispatched run of
such a task gets a Fly Machine of its own, in the workspace's Fly app, instead of an agent of
this process.

The machine runs the product's worker (`orchestrator-worker`, an external agent of spec 002).
Its environment carries what it needs and nothing more: the agent API's URL and a session token
the runtime made for this run (the only session that may claim it: the queue keeps the run
`reserved`), the run's id, the workspace's own key for the task's provider, and the callback URL
with a per-run token whose hash the machine's record keeps. The record, a `WorkerMachine`
(`worker_machine.started`), is saved with the dispatch's tracking row; the reaper (`reaper.py`)
destroys the machine when the run ends, when the worker reports, or when it has not claimed the
run in time.

A redelivered dispatch finds the record and starts nothing. One that comes back after the
machine was created and before the record was saved (the executor stopped in between) starts it
again under the same name: Fly's names are unique in an app, so the client replaces the orphan
(whose session and tokens nobody recorded) rather than leave it running beside the new one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import msgspec

from contracts.commands import CloseWorkerSession, OpenWorkerSession, WorkerSessionReply
from contracts.payloads.worker_machine import WorkerMachineStarted
from contracts.subjects import CLOSE_WORKER_SESSION, OPEN_WORKER_SESSION
from libs.agent.starting import Dispatch
from libs.domain.run import run_id_for
from libs.domain.worker_machine import WorkerMachine, callback_hash, worker_machine_id
from libs.fly.client import FlyError
from libs.leases.clock import now_ms
from services.executor.deps import Deps
from services.executor.unclaimed import unclaimed_failure

log = logging.getLogger(__name__)

CALLBACK_PATH = "/api/callbacks/complete"
# A worker's session outlives any run it could do; it stops by then whatever became of its machine.
SESSION_TTL_S = 24 * 3600


class NotStarted(Exception):
    """Why a run's container cannot be started; the run fails with this text (no secret in it)."""

    def __init__(self, message: str, retryable: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable


def run_id_of(event: Dispatch) -> str:
    p = event.payload
    return str(run_id_for(event.aggregate_id, p.subtask_id, p.attempt, p.handover))


async def on_dispatched(event: Dispatch, deps: Deps) -> list[Any]:
    """Starts the run's machine and returns its record; or, when it cannot be started, the
    run, failed with the reason (nothing was spent)."""
    run_id = run_id_of(event)
    found = await asyncio.to_thread(deps.store.load, worker_machine_id(run_id))
    if isinstance(found, WorkerMachine):
        return []  # a redelivery: its machine was started
    try:
        return [await _start(event, run_id, deps)]
    except NotStarted as exc:
        log.warning("run %s: its container was not started: %s", run_id, exc)
        return [unclaimed_failure(event, deps.settings, str(exc), exc.retryable)]


async def _start(event: Dispatch, run_id: str, deps: Deps) -> WorkerMachine:
    p = event.payload
    fly = await deps.fly.of(event.workspace_id)
    if fly is None:
        raise NotStarted(
            "the task asks for the fly runner, and the workspace has no Fly settings: "
            "PUT /api/config/fly with the API token, app, region, image and size"
        )
    provider = str(p.config.get("provider", "anthropic"))
    key = (await deps.keys.of(event.workspace_id)).keys.get(provider)
    if key is None:
        # Never the service's own key: it would go into a machine the workspace controls.
        raise NotStarted(
            f"a container worker calls {provider} with the workspace's own key, and none is stored: "
            "PUT /api/config/provider-credentials"
        )
    session = await _open_session(event, run_id, provider, deps)
    callback_token = secrets.token_urlsafe(32)
    name = f"run-{run_id}"
    env = worker_environment(deps, event, run_id, session.token or "", callback_token, provider, key)
    try:
        machine_id = await deps.machines.start(fly, name, env, {"run_id": run_id, "task_id": event.aggregate_id})
    except FlyError as exc:
        await close_session(deps, event.workspace_id, str(session.session_id), f"its machine was not started: {exc}")
        raise NotStarted(f"the Fly machine could not be started: {exc}", retryable=exc.retryable) from None
    log.info("run %s: Fly machine %s started in app %s", run_id, machine_id, fly.app)
    return WorkerMachine.start(
        event.workspace_id,
        WorkerMachineStarted(
            task_id=event.aggregate_id,
            run_id=run_id,
            subtask_id=p.subtask_id,
            dispatch_seq=event.seq,
            app=fly.app,
            region=fly.region,
            machine_id=machine_id,
            machine_name=name,
            session_id=str(session.session_id),
            callback_token_hash=callback_hash(callback_token),
            claim_by=now_ms() + int(deps.settings.worker_claim_window_s * 1000),
        ),
    )


def worker_environment(
    deps: Deps, event: Dispatch, run_id: str, session_token: str, callback_token: str, provider: str, key: str
) -> dict[str, str]:
    """The machine's environment: the worker's settings (`services/worker`), one provider's key."""
    settings = deps.settings
    base = (settings.public_url or "").rstrip("/")
    env = {
        "ORCHESTRATOR_AGENT_URL": base,
        "ORCHESTRATOR_SESSION_TOKEN": session_token,
        "ORCHESTRATOR_RUN_ID": run_id,
        "ORCHESTRATOR_TASK_ID": event.aggregate_id,
        "ORCHESTRATOR_CALLBACK_URL": base + CALLBACK_PATH,
        "ORCHESTRATOR_CALLBACK_TOKEN": callback_token,
        "ORCHESTRATOR_LEASE_TTL_SECONDS": str(settings.lease_ttl_s),
        "ORCHESTRATOR_MAX_TURNS": str(settings.agent_max_turns),
    }
    if provider == "openai":
        env["OPENAI_API_KEY"] = key
        if settings.openai_base_url:
            env["OPENAI_BASE_URL"] = settings.openai_base_url
    else:
        env["ANTHROPIC_API_KEY"] = key
        if settings.anthropic_base_url:
            env["ANTHROPIC_BASE_URL"] = settings.anthropic_base_url
    return env


async def _open_session(event: Dispatch, run_id: str, provider: str, deps: Deps) -> WorkerSessionReply:
    p = event.payload
    command = OpenWorkerSession(
        workspace_id=event.workspace_id,
        run_id=run_id,
        name=f"fly-{run_id[:8]}",
        agent_type=p.agent_type,
        provider=provider,
        model=str(p.config.get("model", "")),
        ttl_s=SESSION_TTL_S,
    )
    try:
        raw = await deps.nc.request(
            OPEN_WORKER_SESSION, msgspec.json.encode(command), timeout=deps.settings.command_timeout_s
        )
    except Exception as exc:  # no runtime answering: the dispatch comes back, and is tried again
        raise RuntimeError(f"run {run_id}: no session for its container ({type(exc).__name__})") from exc
    reply = msgspec.json.decode(raw.data, type=WorkerSessionReply)
    if reply.error is not None or reply.token is None:
        raise RuntimeError(f"run {run_id}: the runtime made no session for its container: {reply.error}")
    return reply


async def close_session(deps: Deps, workspace_id: str, session_id: str, detail: str) -> None:
    """Stops a container's session; a runtime that does not answer leaves it to the session's TTL."""
    command = CloseWorkerSession(workspace_id=workspace_id, session_id=session_id, detail=detail)
    try:
        timeout = deps.settings.command_timeout_s
        await deps.nc.request(CLOSE_WORKER_SESSION, msgspec.json.encode(command), timeout=timeout)
    except Exception:
        log.warning("session %s: not stopped now (its TTL stops it)", session_id, exc_info=True)
