"""Spec 003's tasks family through HTTP on the running stack: a workspace's tasks listed with
filters and cursor pages, created as spec 000 creates them, followed status change by status
change, read one by one, and retried; bad input is a 400 in the family's envelope and changes
nothing, and no workspace sees another's tasks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    get_task,
    in_review_and_charged,
    new_workspace,
    script_model,
    status_is,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e

UUID_ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """A client of a workspace of the test's own, so its list holds only the test's tasks."""
    created = new_workspace(stack, "tasks-api")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as client:
        yield client


@pytest.fixture
def other(stack: Stack) -> Iterator[httpx.Client]:
    created = new_workspace(stack, "tasks-api-other")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(created["apiKey"])) as client:
        yield client


def create(api: httpx.Client, *requests: dict[str, Any]) -> list[str]:
    response = api.post("/api/tasks", json={"tasks": list(requests)})
    assert response.status_code == 201, response.text
    return list(response.json()["taskIds"])


def listed(api: httpx.Client, **params: Any) -> list[str]:
    """Every task the list shows for `params`, page after page (`limit` per page)."""
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(100):
        page = api.get("/api/tasks", params={**params, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        ids += [t["id"] for t in page.json()["tasks"]]
        cursor = page.json()["nextCursor"]
        if cursor is None:
            return ids
    raise AssertionError("the list never ended")


def refused(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == code, body
    return str(body["message"])


def on(repo: str, description: str, agent_type: str = "codegen") -> dict[str, Any]:
    request = task_request(description, agent_type)
    request["repo"]["repo"] = repo
    return request


def test_a_task_created_here_is_spec_000s_task_and_is_listed_with_its_summary(stack: Stack, api: httpx.Client) -> None:
    (task_id,) = create(api, task_request("Created on the tasks API"))

    task = wait_for(api, task_id, in_review_and_charged)  # spec 000's view of the same task
    page = api.get("/api/tasks").json()
    (summary,) = page["tasks"]
    assert page["nextCursor"] is None
    assert summary["id"] == task_id and summary["status"] == "review" == task["status"]
    assert (summary["agentType"], summary["description"]) == ("codegen", "Created on the tasks API")
    assert summary["repo"] == {"owner": "acme", "repo": "api", "branch": "agent/validation", "baseBranch": "main"}
    assert summary["queuedAt"] == task["createdAt"] <= summary["startedAt"] <= summary["updatedAt"]
    assert summary["completedAt"] is None and summary["error"] is None
    assert summary["cost"] == task["cost"]
    assert {summary[k] for k in ("retryOf", "retriedBy", "revisionOf", "revisedBy", "parentTaskId")} == {None}
    status = api.get(f"/api/tasks/{task_id}/status")
    assert status.status_code == 200, status.text
    assert status.json() == {
        "id": task_id,
        "status": "review",
        "queuedAt": summary["queuedAt"],
        "startedAt": summary["startedAt"],
        "completedAt": None,
        "updatedAt": summary["updatedAt"],
        "error": None,
        "retryOf": None,
        "retriedBy": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"tasks": []},
        {"tasks": [{"description": "no repo", "agentType": "codegen"}]},
        {"tasks": [{**task_request(), "agentType": "painter"}]},
    ],
)
def test_a_bad_creation_is_a_400_and_creates_nothing(api: httpx.Client, body: dict[str, Any]) -> None:
    refused(api.post("/api/tasks", json=body), 400, "invalid_request")

    assert listed(api) == []


def test_the_list_filters_by_status_repository_agent_type_and_time_a_page_at_a_time(
    stack: Stack, api: httpx.Client, other: httpx.Client
) -> None:
    first = create(api, on("api", "First on api"), on("web", "First on web", "review"))
    time.sleep(0.01)  # a later submission time for the ones after
    since = int(time.time() * 1000)
    later = create(api, on("api", "Later on api", "review"), on("API", "Later on API"))
    everything = [*first, *later]
    for task_id in everything:
        wait_for(api, task_id, in_review_and_charged)
    (stopped,) = create(api, on("web", "Stopped at once"))
    assert api.post(f"/api/tasks/{stopped}/stop").status_code == 200
    create(other, on("api", "Another workspace's"))

    newest_first = listed(api, limit=50)
    assert set(newest_first) == {*everything, stopped} and newest_first[0] == stopped
    assert listed(api, limit=2) == listed(api, limit=1) == newest_first, "pages neither repeat nor skip"
    assert set(listed(api, status="review")) == set(everything)
    assert set(listed(api, status=["cancelled", "failed"])) == {stopped}
    assert set(listed(api, repository="acme/api")) == {first[0], *later}, "any case, as GitHub's names"
    assert set(listed(api, repository="ACME/web", status="review")) == {first[1]}
    assert set(listed(api, agentType="review")) == {first[1], later[0]}
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(since / 1000)) + f".{since % 1000:03d}Z"
    assert set(listed(api, since=since)) == set(listed(api, since=iso)) == {*later, stopped}
    assert listed(api, repository="nobody/api") == []


@pytest.mark.parametrize(
    ("params", "code", "says"),
    [
        ({"cursor": "not-a-cursor"}, "invalid_cursor", "cursor"),
        ({"cursor": "WyJoaXN0b3J5IiwxMl0"}, "invalid_cursor", "cursor"),  # a history's cursor
        ({"since": "yesterday"}, "invalid_request", "since: expected epoch milliseconds or an ISO 8601 time"),
        ({"status": "sleeping"}, "invalid_request", "status"),
        ({"agentType": "painter"}, "invalid_request", "agentType"),
        ({"repository": "acme"}, "invalid_request", "a GitHub repository as owner/name"),
        ({"repository": "acme/../etc"}, "invalid_request", "repository"),
        ({"limit": 0}, "invalid_request", "limit"),
        ({"limit": 201}, "invalid_request", "limit"),
    ],
)
def test_a_bad_list_query_is_a_400_saying_what_is_wrong(
    api: httpx.Client, params: dict[str, Any], code: str, says: str
) -> None:
    assert says in refused(api.get("/api/tasks", params=params), 400, code)


def test_the_history_is_each_status_change_newest_first_with_the_times_and_pages_of_it(api: httpx.Client) -> None:
    (task_id,) = create(api, task_request("Followed to the end"))
    wait_for(api, task_id, in_review_and_charged)
    decided = api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"})
    assert decided.status_code == 200, decided.text
    task = wait_for(api, task_id, status_is("completed"))

    history = api.get("/api/tasks/history").json()
    changes = history["transitions"]
    assert history["nextCursor"] is None
    assert [(c["previousStatus"], c["status"]) for c in changes] == [
        ("approved", "completed"),
        ("review", "approved"),
        ("running", "review"),
        ("assigned", "running"),
        ("pending", "assigned"),
        (None, "pending"),
    ]
    assert {c["taskId"] for c in changes} == {task_id}
    assert [c["seq"] for c in changes] == sorted((c["seq"] for c in changes), reverse=True)
    assert {c["queuedAt"] for c in changes} == {task["createdAt"]}
    started = changes[3]["occurredAt"]
    assert [c["startedAt"] for c in changes] == [started] * 4 + [None] * 2
    assert [c["completedAt"] for c in changes] == [changes[0]["occurredAt"]] + [None] * 5
    assert all(c["error"] is None for c in changes)
    # A page at a time, then only this task's: the same changes.
    pages, cursor = [], None
    while True:
        page = api.get("/api/tasks/history", params={"limit": 4, **({"cursor": cursor} if cursor else {})}).json()
        pages.append(page["transitions"])
        if (cursor := page["nextCursor"]) is None:
            break
    assert [len(p) for p in pages] == [4, 2] and pages[0] + pages[1] == changes
    assert api.get("/api/tasks/history", params={"taskId": task_id}).json()["transitions"] == changes
    status = api.get(f"/api/tasks/{task_id}/status").json()
    ended = changes[0]["occurredAt"]
    assert (status["status"], status["startedAt"], status["completedAt"]) == ("completed", started, ended)


def test_no_workspace_sees_anothers_tasks_their_history_or_their_status(api: httpx.Client, other: httpx.Client) -> None:
    (task_id,) = create(api, task_request("Mine alone"))
    wait_for(api, task_id, status_is("review"))

    assert listed(other) == []
    assert other.get("/api/tasks/history").json()["transitions"] == []
    assert other.get("/api/tasks/history", params={"taskId": task_id}).json()["transitions"] == []
    for path in (f"/api/tasks/{task_id}/status", f"/api/tasks/{task_id}/retry", f"/api/tasks/{task_id}/stop"):
        call = other.get if path.endswith("status") else other.post
        refused(call(path), 404, "Not found")
    assert get_task(api, task_id)["status"] == "review", "the other workspace's calls changed nothing"


@pytest.mark.parametrize("task_id", [UUID_ZERO, "not-a-task", UUID_ZERO.upper()])
def test_an_unknown_task_is_a_404(api: httpx.Client, task_id: str) -> None:
    refused(api.get(f"/api/tasks/{task_id}/status"), 404, "Not found")
    refused(api.post(f"/api/tasks/{task_id}/retry"), 404, "Not found")
    refused(api.post(f"/api/tasks/{task_id}/stop"), 404, "Not found")


def test_a_failed_task_retried_runs_again_as_a_new_task_linked_both_ways(stack: Stack, api: httpx.Client) -> None:
    # A refusal no retry can fix (HTTP 400): the run fails, and the task with it.
    script_model(stack, {"match": "Fail on the first go", "status": 400})
    (failed,) = create(api, task_request("Fail on the first go"))
    wait_for(api, failed, status_is("failed"))
    status = api.get(f"/api/tasks/{failed}/status").json()
    assert status["status"] == "failed" and "anthropic returned HTTP 400" in status["error"]
    assert status["completedAt"] is not None

    retried = api.post(f"/api/tasks/{failed}/retry")

    assert retried.status_code == 201, retried.text
    new = retried.json()
    assert new["id"] != failed and new["retryOf"] == failed and new["retriedBy"] is None
    assert new["status"] in ("pending", "assigned", "running") and new["error"] is None
    done = wait_for(api, new["id"], in_review_and_charged)  # the model answers this time
    assert done["retryOf"] == failed and done["request"]["description"] == "Fail on the first go"
    assert get_task(api, failed)["retriedBy"] == new["id"]
    assert api.get(f"/api/tasks/{failed}/status").json()["retriedBy"] == new["id"]
    # Sent again, it answers the same new task and makes no other.
    again = api.post(f"/api/tasks/{failed}/retry")
    assert again.status_code == 200 and again.json()["id"] == new["id"] and again.json()["status"] == "review"
    assert sorted(listed(api)) == sorted([failed, new["id"]])
    # The failure and the retry on the history: the new task's submission names nothing, the old
    # task's failure carries its error.
    history = api.get("/api/tasks/history", params={"taskId": failed}).json()["transitions"]
    assert history[0]["status"] == "failed" and history[0]["error"] == status["error"]


def test_only_a_failed_or_cancelled_task_is_retried(api: httpx.Client) -> None:
    (task_id,) = create(api, task_request("Still in review"))
    wait_for(api, task_id, status_is("review"))

    message = refused(api.post(f"/api/tasks/{task_id}/retry"), 409, "invalid_state_transition")

    assert f"task {task_id} is 'review'" in message and "only a failed or cancelled task" in message
    assert listed(api) == [task_id], "nothing was created"
    assert get_task(api, task_id).get("retriedBy") is None
