"""Approved tasks get their pull request (`task.approved`); its event is their live log's line."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec

from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.task import TaskApproved
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.domain.task import APPROVED, Task
from services.executor.deps import Deps
from services.executor.github.pull_requests import open_pull_request


async def on_approved(envelope: EventEnvelope, deps: Deps) -> list[Any]:
    """An approved task's pull request (`task.approved`); saved by the consumer with the event's
    tracking row the moment it returns."""
    event: Event[TaskApproved] = typed(envelope)
    pull_id, task_id = pull_request_id(event.aggregate_id), uuid.UUID(event.aggregate_id)
    found = await asyncio.to_thread(deps.store.load_many, [pull_id, task_id])
    task = found.get(task_id)
    if pull_id in found or (isinstance(task, Task) and task.status != APPROVED):
        # Published already, or the task moved on (cancelled by a purge, say) while an
        # approval handed back (a rate limit, GitHub away) waited: nothing to publish.
        return []
    return [await publish(event, deps)]


async def publish(event: Event[TaskApproved], deps: Deps) -> PullRequest:
    """The approved task's pull request. Without GitHub credentials the task still completes,
    and the event says plainly that no pull request was opened and why."""
    p, task_id = event.payload, event.aggregate_id
    # The approval names the changed files by digest: their contents, in one query.
    refs = msgspec.to_builtins(p.changes.files)
    (files,) = await asyncio.to_thread(deps.store.blobs.files, event.workspace_id, refs)
    task_url = f"{deps.settings.public_url.rstrip('/')}/tasks/{task_id}" if deps.settings.public_url else None
    # A pull request handed back to be tried later (`TryLater`: rate limited, GitHub away) is
    # no event and no log line: nothing changed, and the consumer's log says when it is tried again.
    return await open_pull_request(
        deps.github,
        event.workspace_id,
        task_id,
        p.repo,
        files,
        p.changes.deleted,
        msgspec.to_builtins(p.summaries),  # `{"subtaskId", "agentType", "summary"}`, as the wire writes them
        task_url,
        p.title,
        deps.locks,
        approved_at_ms=event.occurred_at,
    )
