"""The intake's steps against the real event store, with GitHub and the planner replaced by
recorders: each step happens once whatever is redelivered, a step interrupted by a failure is
taken again without repeating the ones before it, and a task the intake did not make is not its
business."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from contracts.commands import CommandError, CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.payloads.webhook_delivery import WebhookDeliveryReceived
from libs.config import Settings
from libs.domain.intake_request import IntakeRequest, delivery_task_id, intake_request_id
from libs.eventstore.store import EventStore
from services.intake import handlers
from services.intake.github import Snapshot, Unreachable

SETTINGS = Settings(service="intake", database_url="unused", public_url="https://agents.example.com")


@dataclass
class GitHubRecorder:
    level: str = "write"
    comments: list[str] = field(default_factory=list)
    fail_next_comment: bool = False
    unreachable: bool = False

    async def permission(self, gh: Any, owner: str, repo: str, user: str) -> str:
        if self.unreachable:
            raise Unreachable("GitHub answered 404 to read the permission")
        return self.level

    async def repository_files(self, gh: Any, owner: str, repo: str) -> Snapshot:
        return Snapshot("main", {"README.md": "# shop\n"}, 0)

    async def comment(self, gh: Any, owner: str, repo: str, issue: int, body: str) -> int:
        if self.fail_next_comment:
            self.fail_next_comment = False
            raise RuntimeError("GitHub went away")
        self.comments.append(body)
        return 1000 + len(self.comments)


@dataclass
class PlannerRecorder:
    sent: list[SubmitTasksCommand] = field(default_factory=list)
    reply: CommandReply | None = None

    async def __call__(self, command: SubmitTasksCommand) -> CommandReply:
        self.sent.append(command)
        return self.reply or CommandReply(task_ids=[str(delivery_task_id(command.workspace_id, "x"))])


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> GitHubRecorder:
    recorder = GitHubRecorder()

    @contextlib.asynccontextmanager
    async def installation(settings: Settings, installation_id: int) -> AsyncIterator[None]:
        yield None

    monkeypatch.setattr(handlers.github, "installation", installation)
    for name in ("permission", "repository_files", "comment"):
        monkeypatch.setattr(handlers.github, name, getattr(recorder, name))
    return recorder


def delivery(workspace: str, seq: int = 1) -> EventEnvelope:
    received = WebhookDeliveryReceived(
        delivery_id=str(uuid.uuid4()),
        installation_id=7,
        owner="acme",
        repo="shop",
        issue_number=3,
        issue_title="Validate input",
        issue_body="The form takes anything.",
        comment_id=11,
        commenter="octocat",
        agent_type="codegen",
        description="add input validation",
    )
    payload = msgspec.to_builtins(received)
    return EventEnvelope(seq, "webhook_delivery.received", workspace, str(uuid.uuid4()), 1, 0, payload)


async def handle(event: EventEnvelope, store: EventStore, planner: PlannerRecorder) -> IntakeRequest:
    (request,) = await handlers.on_delivery(event, handlers.Deps(SETTINGS, store, planner))
    store.save([request])
    assert isinstance(request, IntakeRequest)
    return request


async def test_a_command_is_submitted_once_and_linked_once(store: EventStore, github: GitHubRecorder) -> None:
    planner, event = PlannerRecorder(), delivery("ws-intake-once")

    request = await handle(event, store, planner)
    await handle(event, store, planner)

    (sent,) = planner.sent
    assert sent.idempotency_key == f"github-delivery:{event.payload['delivery_id']}"
    (task,) = sent.tasks
    assert task["description"].startswith("add input validation\n\nGitHub issue #3: Validate input")
    assert task["repo"] == {
        "owner": "acme",
        "repo": "shop",
        "branch": f"agent/issue-3-{request.task_id[:8]}",
        "baseBranch": "main",
        "files": {"README.md": "# shop\n"},
    }
    (linked,) = github.comments
    assert f"https://agents.example.com/api/tasks/{request.task_id}/status" in linked
    assert request.task_id == str(delivery_task_id("ws-intake-once", event.payload["delivery_id"]))


async def test_a_reply_that_failed_is_made_later_without_a_second_submission_effect(
    store: EventStore, github: GitHubRecorder
) -> None:
    planner, event = PlannerRecorder(), delivery("ws-intake-retry")
    github.fail_next_comment = True

    with pytest.raises(RuntimeError):
        await handle(event, store, planner)
    request = await handle(event, store, planner)

    # Sent again with the same key (the planner creates nothing the second time), replied once.
    assert [c.idempotency_key for c in planner.sent] == [planner.sent[0].idempotency_key] * 2
    assert len(github.comments) == 1
    assert request.replies == {"task_created": 1001}


async def test_a_reader_is_refused_once_and_nothing_is_submitted(store: EventStore, github: GitHubRecorder) -> None:
    planner, event = PlannerRecorder(), delivery("ws-intake-reader")
    github.level = "read"

    request = await handle(event, store, planner)
    await handle(event, store, planner)

    assert planner.sent == []
    (refusal,) = github.comments
    assert "needs write access to acme/shop" in refusal and "`read`" in refusal
    assert request.task_id is None and request.replies == {"refused": 1001}


async def test_a_submission_the_planner_refuses_is_said_on_the_issue(store: EventStore, github: GitHubRecorder) -> None:
    planner = PlannerRecorder(reply=CommandReply(error=CommandError(400, "invalid_request", "bad branch")))

    request = await handle(delivery("ws-intake-refused"), store, planner)

    assert github.comments == ["@octocat The task could not be created: bad branch"]
    assert request.replies == {"failed": 1001}


async def test_the_end_of_a_task_the_intake_did_not_make_is_passed_over(
    store: EventStore, github: GitHubRecorder
) -> None:
    ended = EventEnvelope(9, "task.completed", "ws-other", str(uuid.uuid4()), 9, 0, {"pr_url": "https://x/pull/1"})

    assert await handlers.on_task_end(ended, handlers.Deps(SETTINGS, store, PlannerRecorder())) == []
    assert github.comments == []


async def test_the_end_of_its_task_is_said_once(store: EventStore, github: GitHubRecorder) -> None:
    planner, event = PlannerRecorder(), delivery("ws-intake-end")
    request = await handle(event, store, planner)
    assert store.load(intake_request_id(request.task_id)) is not None
    ended = EventEnvelope(9, "task.completed", "ws-intake-end", request.task_id, 9, 0, {"pr_url": "https://x/pull/1"})
    deps = handlers.Deps(SETTINGS, store, planner)

    store.save(await handlers.on_task_end(ended, deps))
    assert await handlers.on_task_end(ended, deps) == []

    assert github.comments[1:] == [
        f"Done: the pull request is https://x/pull/1 (task: https://agents.example.com/api/tasks/{request.task_id}/status)"
    ]


async def test_a_repository_the_installation_cannot_reach_is_given_up_not_retried(
    store: EventStore, github: GitHubRecorder
) -> None:
    planner, event = PlannerRecorder(), delivery("ws-intake-gone")
    github.unreachable = True

    done = await handlers.on_delivery(event, handlers.Deps(SETTINGS, store, planner))

    assert done == []
    assert planner.sent == [] and github.comments == []
