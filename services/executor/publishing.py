"""Approved tasks get their pull request (`task.approved`), and their live log says so."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from contracts.events import EventEnvelope
from libs.bus.consumer import TryLater
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.domain.task import APPROVED, Task
from services.executor.deps import Deps
from services.executor.github.pull_requests import open_pull_request
from services.executor.livelog import log_line


async def on_approved(event: EventEnvelope, deps: Deps) -> list[Any]:
    """An approved task's pull request (`task.approved`); saved by the consumer with the event's
    tracking row the moment it returns."""
    pull_id, task_id = pull_request_id(event.aggregate_id), uuid.UUID(event.aggregate_id)
    found = await asyncio.to_thread(deps.store.load_many, [pull_id, task_id])
    task = found.get(task_id)
    if pull_id in found or (isinstance(task, Task) and task.status != APPROVED):
        # Published already, or the task moved on (cancelled by a purge, say) while an
        # approval handed back (a rate limit, GitHub away) waited: nothing to publish.
        return []
    return [await publish(event, deps)]


async def publish(event: EventEnvelope, deps: Deps) -> PullRequest:
    """The approved task's pull request. Without GitHub credentials the task still completes,
    and the event says plainly that no pull request was opened and why."""
    p, task_id = event.payload, event.aggregate_id
    task_url = f"{deps.settings.public_url.rstrip('/')}/tasks/{task_id}" if deps.settings.public_url else None
    try:
        pull = await open_pull_request(
            deps.github,
            event.workspace_id,
            task_id,
            p["repo"],
            p["changes"]["files"],
            p["changes"]["deleted"],
            p["summaries"],
            task_url,
            p["title"],
            deps.locks,
            approved_at_ms=event.occurred_at,
        )
    except TryLater as later:
        # The task stays approved meanwhile: its live log says why nothing has happened yet.
        message = f"[executor] pull request delayed: {later}"
        log_line(deps.logs, event.workspace_id, task_id, task_id[:8], message, "warn")
        raise
    log_line(deps.logs, event.workspace_id, task_id, task_id[:8], _pull_line(pull))
    return pull


def _pull_line(pull: PullRequest) -> str:
    if pull.url:
        return f"[executor] pull request opened: {pull.url}"
    return f"[executor] no pull request opened: {pull.skipped_reason or pull.error}"
