"""What a lease's holder does under it (`cmd.executor.under-lease`): `heartbeat`, `complete`,
`fail`, `release`, sent by the agent runtime's edge for an authenticated session.

Each call passes the fence first (`libs.leases.fence`: this session, this token, the run still
claimed, the lease not passed) and appends at the version it read: when the sweeper expired the
lease meanwhile, the append conflicts and the call is refused, changing nothing.

`complete` goes the executor's own runs' way: the files the agent wrote are applied to the
snapshot the run started from, the self-heal checks judge them (a failure is retryable, with the
problems as the next attempt's error), the changed files are stored by digest, and the run's
usage is priced and charged by the cost ledger and counted against the budgets like any run's.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.agent_tasks import RunResult, Usage
from contracts.commands import CommandError, LeaseCommand, LeaseRefusal, LeaseReply
from contracts.files import FileRef
from contracts.payloads.shapes import RunOutput
from libs.agent.checks import COLLECT_TIMEOUT_S, check
from libs.agent.repository import PathError, printable
from libs.agent.starting import dispatch_at, starting_repository, wanted
from libs.domain.run import FAILED, RELEASED, SUCCEEDED, Run
from libs.eventstore.blobs import carry, stored
from libs.eventstore.store import EventStore
from libs.leases import heartbeats
from libs.leases.clock import now_ms
from libs.leases.fence import lease_end, refusal
from libs.observability.logs import redact
from libs.readmodels import lease_reads
from libs.readmodels.task_log import CHECKS_FAILED

CLAIM_AGAIN = "POST /api/agent/tasks/claim-next"
VERBS = frozenset({"heartbeat", "complete", "fail", "release"})


class Refused(Exception):
    def __init__(self, refusal: LeaseRefusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _lease_lost(run: Run) -> Refused:
    return Refused(
        LeaseRefusal(
            status=409,
            code="lease_expired",
            message=f"the lease on run {run.id} expired",
            evidence={"run_id": str(run.id)},
            suggested_command=CLAIM_AGAIN,
        )
    )


class Held:
    """A run the calling session holds, fenced: loaded, checked, with its lease's end."""

    def __init__(self, run: Run, lease_until: int | None, heartbeat_at: int | None, task_status: str | None) -> None:
        self.run = run
        self.lease_until = lease_until
        self.heartbeat_at = heartbeat_at
        self.task_status = task_status  # its task's, or its orchestration run's; None: purged
        self.seq = 0


async def on_command(raw: bytes, store: EventStore, collect_tests: bool) -> LeaseReply:
    try:
        command = msgspec.json.decode(raw, type=LeaseCommand)
        result = msgspec.convert(command.result, RunResult) if command.result is not None else None
        usage = msgspec.convert(command.usage, Usage) if command.usage is not None else Usage()
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return LeaseReply(error=CommandError(400, "invalid_request", str(exc)))
    if command.verb not in VERBS or (command.verb == "complete" and result is None):
        return LeaseReply(error=CommandError(400, "invalid_request", f"not a call under a lease: {command.verb}"))
    try:
        try:
            h = await held(store, command)
        except Refused as refused:
            again = await _ended_by_the_same_call(store, command, refused)
            if again is None:
                raise
            return again
        await _stop_if_its_task_ended(store, h, command.verb, usage if result is None else result.usage)
        if command.verb == "heartbeat":
            h = await heartbeat(store, h, command.lease_ttl_s)
        elif command.verb == "complete":
            assert result is not None
            h = await complete(store, h, result, collect_tests)
        elif command.verb == "fail":
            h = await fail(store, h, command.error or "failed", command.retryable, usage)
        else:
            h = await release(store, h, command.reason, usage)
    except Refused as refused:
        return LeaseReply(refused=refused.refusal)
    except PathError as exc:
        return LeaseReply(refused=LeaseRefusal(status=400, code="invalid_path", message=str(exc)))
    return LeaseReply(seq=h.seq, run_id=str(h.run.id), lease_until=h.lease_until, heartbeat_at=h.heartbeat_at)


def _run_id(text: str) -> uuid.UUID | None:
    try:
        found = uuid.UUID(text)
    except ValueError:
        return None
    return found if str(found) == text else None


async def held(store: EventStore, command: LeaseCommand) -> Held:
    """The run, when the command's session holds it under its token now; else the refusal."""
    wanted_id = _run_id(command.run_id)
    run = await asyncio.to_thread(store.load, wanted_id) if wanted_id is not None else None
    if not isinstance(run, Run) or run.workspace_id != command.workspace_id:
        # Another workspace's run is as unknown here as one that does not exist.
        message = f"run {command.run_id} not found"
        raise Refused(LeaseRefusal(status=404, code="run_not_found", message=message, suggested_command=CLAIM_AGAIN))
    beat, task_status = await asyncio.to_thread(lease_reads.with_its_task, store, run.id, run.task_id)
    beat_until, beat_at = beat or (None, None)
    refused = refusal(run, command.session_id, command.claim_token, beat_until, now_ms())
    if refused is not None:
        evidence: dict[str, object] = {"run_id": command.run_id}
        if refused.code != "not_lease_holder":  # of another session's run, nothing more is told
            evidence |= {"run_status": run.status, "lease_until": lease_end(run, beat_until)}
        raise Refused(
            LeaseRefusal(
                status=refused.status,
                code=refused.code,
                message=refused.message,
                evidence=evidence,
                suggested_command=CLAIM_AGAIN,
            )
        )
    return Held(run, lease_end(run, beat_until), beat_at, task_status)


# What a `complete`'s own checks may take (collecting the tests it wrote): its lease is kept
# that long while they run, since the holder, waiting for the answer, cannot heartbeat.
CHECKS_MARGIN_S = COLLECT_TIMEOUT_S + 30


async def heartbeat(store: EventStore, h: Held, ttl_s: int | None) -> Held:
    """The lease extended by `ttl_s` (the claim's length when None) from now."""
    run = h.run
    ttl_ms = (ttl_s or run.lease_ttl_s or 30) * 1000
    beat = await asyncio.to_thread(
        heartbeats.extend, store, run.id, run.claim_token_hash or "", run.lease_until or 0, ttl_ms
    )
    if beat is None:
        raise _lease_lost(run)
    new_end, at = beat
    return Held(run, max(new_end, run.lease_until or 0), at, h.task_status)


async def _ended_by_the_same_call(store: EventStore, command: LeaseCommand, refused: Refused) -> LeaseReply | None:
    """A `complete`, `fail` or `release` sent again (its answer was lost) finds its run ended by
    the first: it answers the run as it is, and changes nothing."""
    if refused.refusal.code != "run_not_claimed":
        return None
    run = await asyncio.to_thread(store.load, uuid.UUID(command.run_id))
    if not isinstance(run, Run) or run.session_id != command.session_id or not run.fenced_by(command.claim_token):
        return None
    error = run.error or ""
    ended_so = {
        "complete": run.status == SUCCEEDED or (run.status == FAILED and error.startswith(CHECKS_FAILED)),
        "fail": run.status == FAILED and error == printable(redact(command.error or "failed")),
        "release": run.status == RELEASED,
    }
    if not ended_so.get(command.verb, False):
        return None  # ended otherwise (expired, its task stopped): the refusal stands
    return LeaseReply(run_id=str(run.id), lease_until=run.lease_until)


async def _stop_if_its_task_ended(store: EventStore, h: Held, verb: str, usage: Usage) -> None:
    """A run whose task ended (cancelled, failed, completed, or purged with its workspace) is
    nobody's to go on with: it ends here, charged what its holder reports, and the call is
    refused. The executor's own runs are stopped by the purge itself (`purges.py`)."""
    if h.task_status is not None and h.task_status not in ("completed", "failed", "cancelled"):
        return
    status = h.task_status or "purged"
    run = h.run
    run.fail(
        f"stopped: its task is {status}",
        _usage(usage),
        _working_ms(run),
        usage.calls,
        retryable=False,
        model=usage.model or None,
    )
    await _save(store, h)
    raise Refused(
        LeaseRefusal(
            status=409,
            code="task_ended",
            message=f"task {run.task_id} is {status}: run {run.id} is stopped, not {verb}ed",
            evidence={"run_id": str(run.id), "task_id": run.task_id, "task_status": status},
            suggested_command=CLAIM_AGAIN,
        )
    )


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
    }


def _working_ms(run: Run) -> int:
    return max(0, int(time.time() * 1000 - run.created_on.timestamp() * 1000))


async def complete(store: EventStore, h: Held, result: RunResult, collect_tests: bool) -> Held:
    """The run ends with the agent's result, judged by the self-heal checks."""
    run = h.run
    dispatch = await asyncio.to_thread(dispatch_at, store, run.dispatch_seq or 0)
    if dispatch is None:
        raise Refused(LeaseRefusal(status=409, code="run_input_missing", message=f"run {run.id} has no dispatch"))
    loaded = await asyncio.to_thread(store.blobs.load, run.workspace_id, wanted(dispatch.payload))
    repo = starting_repository(dispatch.payload, loaded)
    for path in result.deleted_files:
        if repo.read(path) is not None:
            repo.delete(path)
    for path, content in result.files.items():
        if repo.read(path) != content:
            repo.write(path, printable(content))
    summary = printable(result.summary)
    # The holder waits for this answer and cannot heartbeat meanwhile: the lease is kept for
    # what the checks may take, or the sweeper would end a run completed in time.
    await heartbeat(store, h, CHECKS_MARGIN_S)
    problems = [printable(redact(p)) for p in await check(repo, summary, collect_tests)]
    changes = repo.changes()
    refs, blobs = stored(run.workspace_id, changes.files)
    carry(run, blobs)
    files: dict[str, FileRef | str] = {path: FileRef(digest=r["digest"], size=r["size"]) for path, r in refs.items()}
    output = RunOutput(files=files, summary=summary, deleted_files=changes.deleted)
    usage, calls, model = _usage(result.usage), result.usage.calls, result.usage.model or None
    if problems:
        error = f"{CHECKS_FAILED}\n" + "\n".join(problems)
        run.fail(error, usage, _working_ms(run), calls, retryable=True, output=output, model=model)
    else:
        run.succeed(output, usage, _working_ms(run), calls, model=model)
    return await _save(store, h)


async def fail(store: EventStore, h: Held, error: str, retryable: bool, usage: Usage) -> Held:
    run = h.run
    text = printable(redact(error))
    run.fail(text, _usage(usage), _working_ms(run), usage.calls, retryable=retryable, model=usage.model or None)
    return await _save(store, h)


async def release(store: EventStore, h: Held, reason: str | None, usage: Usage) -> Held:
    run = h.run
    text = printable(redact(reason)) if reason else None
    run.release(text, _usage(usage), _working_ms(run), usage.calls, model=usage.model or None)
    return await _save(store, h)


async def _save(store: EventStore, h: Held) -> Held:
    try:
        h.seq = await asyncio.to_thread(store.save, [h.run])
    except IntegrityError:
        # The run changed since the fence read it: the sweeper expired its lease meanwhile.
        raise _lease_lost(h.run) from None
    return h
