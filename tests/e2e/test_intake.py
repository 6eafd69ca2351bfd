"""The intake through HTTP on the real stack: a command comment, signed and delivered by the local
GitHub server, becomes a task on that repository (the issue as context, the files of its default
branch), the issue gets a comment linking the task and, once the task ends, another with the pull
request; a redelivery creates nothing more; a commenter without write access is refused with a
reply saying why and no task."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.github_browser import unique
from tests.e2e.github_deliveries import Repository, comment, commenter, linked_repository
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    in_review_and_charged,
    new_workspace,
    script_model,
    status_is,
    wait_for,
)

pytestmark = pytest.mark.e2e


def issue_comments(stack: Stack, where: Repository) -> list[dict[str, Any]]:
    url = f"{stack.github_url}/repos/{where.owner}/{where.repo}/issues/{where.issue}/comments"
    answer = httpx.get(url, headers={"Authorization": f"token {stack.github_token}"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def replies(stack: Stack, where: Repository) -> list[str]:
    """The App's comments on the issue (the people's are the commands)."""
    return [c["body"] for c in issue_comments(stack, where) if c["user"]["type"] == "Bot"]


def eventually(what: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := what()):
        assert time.monotonic() < deadline, f"not there after {timeout}s"
        time.sleep(0.1)
    return found


def tasks_of(stack: Stack, workspace: dict[str, str]) -> list[dict[str, Any]]:
    listed = httpx.get(f"{stack.gateway_url}/api/tasks", headers=bearer(workspace["apiKey"]), timeout=10)
    assert listed.status_code == 200, listed.text
    return listed.json()["tasks"]  # type: ignore[no-any-return]


def intake_events(stack: Stack, workspace: dict[str, str]) -> list[dict[str, Any]]:
    events = debug_dump(stack, workspace["workspaceId"], bearer(workspace["apiKey"]))["events"]
    return [e for e in events if e["type"].startswith("intake_request.")]


def test_a_command_becomes_a_task_linked_on_the_issue_then_its_pull_request(stack: Stack) -> None:
    workspace = new_workspace(stack, "intake-task")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)

    sent = comment(stack, where, login, "/agent codegen add input validation")
    assert sent["status"] == 202, sent

    (linked,) = eventually(lambda: replies(stack, where))
    (task,) = tasks_of(stack, workspace)
    status_url = f"{stack.public_url}/api/tasks/{task['id']}/status"
    assert status_url in linked and f"@{login}" in linked
    api = httpx.Client(base_url=stack.gateway_url, headers=bearer(workspace["apiKey"]), timeout=30)
    full = api.get(f"/tasks/{task['id']}").json()["task"]
    request = full["request"]
    assert request["agentType"] == "codegen"
    assert request["description"].startswith("add input validation")
    assert "Validate input" in request["description"] and "The signup form takes any email." in request["description"]
    assert (request["repo"]["owner"], request["repo"]["repo"], request["repo"]["baseBranch"]) == (
        where.owner,
        where.repo,
        "main",
    )
    assert list(request["repo"]["files"]) == ["README.md"]
    assert api.get(status_url.removeprefix(stack.public_url)).status_code == 200

    wait_for(api, task["id"], in_review_and_charged, timeout=60)
    approved = api.post(f"/tasks/{task['id']}/review", json={"taskId": task["id"], "decision": "approve"})
    assert approved.status_code == 200, approved.text
    done = wait_for(api, task["id"], status_is("completed", "failed"), timeout=60)
    assert done["status"] == "completed", done
    _, finished = eventually(lambda: replies(stack, where) if len(replies(stack, where)) == 2 else None)
    assert done["prUrl"] and done["prUrl"] in finished
    assert [e["type"] for e in intake_events(stack, workspace)] == [
        "intake_request.task_created",
        "intake_request.replied",
        "intake_request.replied",
    ]


def test_a_redelivered_command_makes_no_second_task_or_reply(stack: Stack) -> None:
    workspace = new_workspace(stack, "intake-again")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where, role="maintain")
    first = comment(stack, where, login, "/agent test cover the signup form")
    eventually(lambda: replies(stack, where))

    again = comment(stack, where, login, "/agent test cover the signup form", delivery=first["delivery"])
    time.sleep(2)  # what a second task or reply would need to show up

    assert again["status"] == 200
    assert len(tasks_of(stack, workspace)) == 1
    assert len(replies(stack, where)) == 1


def test_a_commenter_without_write_access_is_refused_on_the_issue_and_no_task_is_made(stack: Stack) -> None:
    workspace = new_workspace(stack, "intake-refused")
    where = linked_repository(stack, workspace)
    reader = commenter(stack, where, role="read")

    sent = comment(stack, where, reader, "/agent codegen delete the tests")

    assert sent["status"] == 202  # the gateway does not ask GitHub: the intake does
    (refusal,) = eventually(lambda: replies(stack, where))
    assert f"@{reader}" in refusal and "write access" in refusal and "`read`" in refusal
    assert tasks_of(stack, workspace) == []
    events = intake_events(stack, workspace)
    assert [e["type"] for e in events] == ["intake_request.refused", "intake_request.replied"]
    assert events[1]["payload"]["about"] == "refused"


def test_a_failed_task_is_said_on_the_issue_with_its_error(stack: Stack) -> None:
    workspace = new_workspace(stack, "intake-failed")
    where = linked_repository(stack, workspace)
    login = commenter(stack, where)
    description = unique("use a revoked key")
    script_model(stack, {"match": f"Task: {description}", "status": 401})

    comment(stack, where, login, f"/agent codegen {description}")

    (task,) = eventually(lambda: tasks_of(stack, workspace))
    api = httpx.Client(base_url=stack.gateway_url, headers=bearer(workspace["apiKey"]), timeout=30)
    failed = wait_for(api, task["id"], status_is("failed"), timeout=60)
    _, ended = eventually(lambda: replies(stack, where) if len(replies(stack, where)) == 2 else None)
    assert ended.startswith("The task failed: ") and "HTTP 401" in ended and failed["error"][:200] in ended
    assert [e["payload"].get("about") for e in intake_events(stack, workspace)] == [None, "task_created", "failed"]
