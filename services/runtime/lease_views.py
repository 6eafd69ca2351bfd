"""What the lease routes answer, read from the Run itself (the event store: a claim's answer
is as of its own append, never behind a read model) and its last heartbeat."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts.agent_runtime import ChannelView
from contracts.agent_tasks import (
    Actor,
    EarlierStep,
    FileToFetch,
    LeaseView,
    PreviousAttempt,
    RunInput,
    RunView,
    TaskRef,
)
from contracts.files import FileRef
from contracts.payloads.shapes import Files
from contracts.payloads.task import TaskSubtaskDispatched
from libs.domain.channel import TASK
from libs.domain.run import BUDGET_STOPPED, EXPIRED, FAILED, RELEASED, STARTED, SUCCEEDED, Run
from libs.readmodels.channel_reads import ChannelRow
from libs.readmodels.task_log import CHECKS_FAILED
from services.runtime.channel_views import channel_view

STATUS = {
    STARTED: "claimed",
    SUCCEEDED: "completed",
    FAILED: "failed",
    BUDGET_STOPPED: "budget_stopped",
    EXPIRED: "expired",
    RELEASED: "released",
}
FILES_PATH = "/api/agent/files/"


def at(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms is not None else None


def task_channel(workspace_id: str, task_id: str) -> ChannelView:
    """The task's coordination channel, which every claim of its runs names (any session of the
    workspace may read and post on it: `channels.py`)."""
    return channel_view(
        workspace_id, ChannelRow(channel=f"{TASK}_{task_id}", task_id=task_id, run_id=None, last_activity_at=None)
    )


def holder(run: Run) -> Actor:
    if run.internal:
        return Actor(kind="executor", ref=str(run.id))
    return Actor(kind="agent_session", ref=run.session_id or "")


def lease_view(
    run: Run, lease_until: int | None, heartbeat_at: int | None, channel: ChannelView | None = None
) -> LeaseView:
    """The run's lease; its coordination channel as given (read from the channels' read model,
    with its activity), else its task's as a claim names it."""
    channel = channel or task_channel(run.workspace_id, run.task_id)
    return LeaseView(
        claim_token_hash=run.claim_token_hash or "",
        claimed_by=holder(run),
        coordination_channel=channel,
        coordination_channel_id=channel.id,
        heartbeat_at=at(heartbeat_at),
        lease_until=at(lease_until or run.lease_until or 0) or run.created_on,
        run_id=str(run.id),
        session_id=run.session_id or str(run.id),
        status=STATUS.get(run.status, run.status),
        task_id=run.task_id,
    )


def failure_kind(run: Run) -> str | None:
    if run.status == EXPIRED:
        return "lease_expired"
    if run.status == BUDGET_STOPPED:
        return "budget"
    if run.status == FAILED:
        return "checks" if (run.error or "").startswith(CHECKS_FAILED) else "agent"
    return None


def run_view(run: Run, lease_until: int | None, heartbeat_at: int | None, queued_at: int | None = None) -> RunView:
    lease = lease_view(run, lease_until, heartbeat_at)
    ended = run.status != STARTED
    return RunView(
        attempt=run.attempt,
        claim_token_hash=lease.claim_token_hash,
        claimed_at=run.created_on,
        claimed_by=lease.claimed_by,
        coordination_channel=lease.coordination_channel,
        coordination_channel_id=lease.coordination_channel_id,
        ended_at=run.modified_on if ended else None,
        error=run.error,
        failure_kind=failure_kind(run),
        heartbeat_at=lease.heartbeat_at,
        id=str(run.id),
        idempotency_key=None,
        lease_until=lease.lease_until,
        metadata={"subtask_id": run.subtask_id, "agent_type": run.agent_type, "handover": run.handover},
        network_channel=None,
        origin=Actor(kind="task", ref=run.task_id),
        previous_run_id=run.previous_run_id,
        queued_at=at(queued_at),
        result=None,
        session_id=lease.session_id,
        started_at=run.created_on,
        status=lease.status,
        task_id=run.task_id,
    )


def task_ref(run: Run, row: dict[str, Any] | None) -> TaskRef:
    """The task a claim is of, as the read models hold it (`row`; None when they do not yet)."""
    status = row["status"] if row else "running"
    description = (row or {}).get("description") or ""
    return TaskRef(
        effective_paused=status == "paused",
        id=run.task_id,
        identifier=run.task_id[:8],
        latest_event_seq=run.dispatch_seq or 0,
        owner=Actor(kind="workspace", ref=run.workspace_id),
        paused=status == "paused",
        paused_by_task_id=None,
        priority="normal",
        scope="workspace",
        status=status,
        title=description.splitlines()[0][:200] if description else f"task {run.task_id[:8]}",
        workspace_id=run.workspace_id,
    )


def _to_fetch(files: Files) -> dict[str, FileToFetch]:
    """Files by digest, each with where to fetch it. A file from before blobs (its content in
    the event) has no digest to fetch by: it is left out, as no such run is still queued."""
    return {
        path: FileToFetch(digest=ref.digest, size=ref.size, url=FILES_PATH + ref.digest)
        for path, ref in files.items()
        if isinstance(ref, FileRef)
    }


def run_input(p: TaskSubtaskDispatched) -> RunInput:
    """What the agent needs: the files it starts from (the attempt it retries applied)."""
    files: dict[str, FileRef | str] = dict(p.files)
    previous = None
    if p.previous_output is not None:
        out = p.previous_output
        for path in out.deleted_files:
            files.pop(path, None)
        files.update(out.files)
        previous = PreviousAttempt(
            error=p.previous_error,
            files=_to_fetch(out.files),
            deleted_files=list(out.deleted_files),
            summary=out.summary,
        )
    elif p.previous_error:
        previous = PreviousAttempt(error=p.previous_error, files={}, deleted_files=[], summary="")
    return RunInput(
        subtask_id=p.subtask_id,
        agent_type=p.agent_type,
        description=p.description,
        attempt=p.attempt,
        files=_to_fetch(files),
        earlier=[EarlierStep(subtask_id=s.subtask_id, agent_type=s.agent_type, summary=s.summary) for s in p.earlier],
        previous=previous,
        config=msgspec.to_builtins(p.config),
    )
