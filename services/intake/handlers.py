"""The intake's reactions, each to one event (`EachAlone`: effects outside the store).

On `webhook_delivery.received`: the commenter's permission on the repository, then either the
refusal recorded and said on the issue, or the task recorded (its id is derived from the
delivery), submitted to the planner with the delivery as its idempotency key, and linked on the
issue. On `task.completed` / `task.failed` of a task it made: a last comment. Each step is an
event of the delivery's `IntakeRequest`, saved before the next, so a redelivery or a restart
takes only the steps not yet taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from githubkit import GitHub

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope, typed
from contracts.payloads.intake_request import IntakeRequestRefused, IntakeRequestTaskCreated, Reply
from contracts.payloads.task import TaskCompleted, TaskFailed
from contracts.payloads.webhook_delivery import WebhookDeliveryReceived
from contracts.tasks import MAX_TEXT
from libs.bus.consumer import TryLater
from libs.config import Settings
from libs.domain.intake_request import IntakeRequest, delivery_task_id, intake_request_id
from libs.domain.workspace import config_of, workspace_aggregate_id
from libs.eventstore.store import EventStore
from services.intake import github, replies

log = logging.getLogger(__name__)

Submit = Callable[[SubmitTasksCommand], Awaitable[CommandReply]]


@dataclass(frozen=True)
class Deps:
    settings: Settings
    store: EventStore
    submit: Submit  # `cmd.planner.submit-tasks`, answered by the planner


async def _load(store: EventStore, aggregate_id: Any) -> Any:
    return await asyncio.to_thread(store.load, aggregate_id)


async def _first(store: EventStore, made: IntakeRequest) -> IntakeRequest:
    """The request saved; or, when another replica saved it first, theirs."""
    try:
        await asyncio.to_thread(store.save, [made])
        return made
    except IntegrityError:
        found = await _load(store, made.id)
        assert isinstance(found, IntakeRequest)
        return found


def _public_url(settings: Settings) -> str:
    return settings.public_url or ""  # unset: the link is a path on the gateway


async def on_delivery(event: EventEnvelope, deps: Deps) -> list[Aggregate]:
    try:
        return await _on_delivery(event, deps)
    except github.Unreachable as exc:
        # Given up, not retried: what was recorded stays, and the delivery is done with.
        log.warning("delivery %s: %s; nothing more is done for it", event.payload.get("delivery_id"), exc)
        return []


async def _on_delivery(event: EventEnvelope, deps: Deps) -> list[Aggregate]:
    received = typed(event).payload
    assert isinstance(received, WebhookDeliveryReceived)
    workspace_id = event.workspace_id
    task_id = str(delivery_task_id(workspace_id, received.delivery_id))
    request = await _load(deps.store, intake_request_id(task_id))
    async with github.installation(deps.settings, received.installation_id) as gh:
        if not isinstance(request, IntakeRequest):
            level = await github.permission(gh, received.owner, received.repo, received.commenter)
            if level in github.WRITE_PERMISSIONS:
                created = IntakeRequestTaskCreated(
                    delivery_id=received.delivery_id,
                    task_id=task_id,
                    installation_id=received.installation_id,
                    owner=received.owner,
                    repo=received.repo,
                    issue_number=received.issue_number,
                )
                # Recorded before it is submitted: the task's end, however soon, finds its request.
                request = await _first(deps.store, IntakeRequest.task_created(workspace_id, created))
            else:
                reason = replies.refused(received.commenter, received.owner, received.repo, level)
                refused = IntakeRequestRefused(
                    delivery_id=received.delivery_id,
                    installation_id=received.installation_id,
                    owner=received.owner,
                    repo=received.repo,
                    issue_number=received.issue_number,
                    reason=reason,
                )
                request = await _first(deps.store, IntakeRequest.refused(workspace_id, refused))
        if request.refusal is not None:
            if "refused" not in request.replies:
                await _reply(gh, request, "refused", request.refusal)
        elif "task_created" not in request.replies and "failed" not in request.replies:
            await _create_task(gh, deps, received, request)
    return [request]


async def _create_task(gh: GitHub[Any], deps: Deps, received: WebhookDeliveryReceived, request: IntakeRequest) -> None:
    snapshot = await github.repository_files(gh, received.owner, received.repo)
    workspace = await _load(deps.store, workspace_aggregate_id(request.workspace_id))
    config = config_of({workspace_aggregate_id(request.workspace_id): workspace}, request.workspace_id)
    task = {
        "description": _description(received),
        "agentType": received.agent_type,
        "repo": {
            "owner": received.owner,
            "repo": received.repo,
            "branch": f"agent/issue-{received.issue_number}-{str(request.task_id)[:8]}",
            "baseBranch": snapshot.branch,
            "files": snapshot.files,
        },
        "config": config.get("defaultAgentConfig") or {},
    }
    command = SubmitTasksCommand(
        request.workspace_id, [task], idempotency_key=f"github-delivery:{received.delivery_id}"
    )
    reply = await deps.submit(command)
    if reply.error is not None:
        if reply.error.status >= 500:
            raise TryLater(f"the planner answered {reply.error.status}: {reply.error.message}")
        await _reply(gh, request, "failed", replies.not_created(received.commenter, reply.error.message))
        return
    url = replies.status_url(_public_url(deps.settings), str(request.task_id))
    await _reply(
        gh,
        request,
        "task_created",
        replies.task_created(received.commenter, received.agent_type, url, snapshot.skipped),
    )


def _description(received: WebhookDeliveryReceived) -> str:
    """The command's words, then the issue as context: what the agent is asked, and why."""
    context = f"\n\nGitHub issue #{received.issue_number}: {received.issue_title}\n\n{received.issue_body}"
    return (received.description + context)[:MAX_TEXT]


async def _reply(gh: GitHub[Any], request: IntakeRequest, about: Reply, text: str) -> None:
    comment_id = await github.comment(gh, request.owner, request.repo, request.issue_number, text)
    request.replied(about, comment_id)


async def on_task_end(event: EventEnvelope, deps: Deps) -> list[Aggregate]:
    """A last comment on the issue of a task the intake made (any other task is not its own)."""
    request = await _load(deps.store, intake_request_id(event.aggregate_id))
    if not isinstance(request, IntakeRequest):
        return []
    ended = typed(event).payload
    url = replies.status_url(_public_url(deps.settings), event.aggregate_id)
    about: Reply
    if isinstance(ended, TaskCompleted):
        about, text = "completed", replies.completed(url, ended.pr_url)
    elif isinstance(ended, TaskFailed):
        about, text = "failed", replies.failed(url, ended.error)
    else:
        return []
    if about in request.replies:
        return []
    try:
        async with github.installation(deps.settings, request.installation_id) as gh:
            await _reply(gh, request, about, text)
    except github.Unreachable as exc:
        log.warning("task %s ended, but its issue cannot be told: %s", event.aggregate_id, exc)
        return []
    return [request]
