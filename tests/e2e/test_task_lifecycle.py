"""Spec 000 end to end: all six services as processes, driven only through HTTP."""

from __future__ import annotations

import time

import httpx
import pytest

from contracts.tasks import MAX_TEXT
from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    get_task,
    in_review_and_charged,
    status_is,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e

# claude-sonnet-4-20250514 at $3 / $15 per million tokens; the local model server reports
# 1,000 input and 200 output tokens per call.
USD_PER_CALL = (1000 * 3.0 + 200 * 15.0) / 1_000_000


@pytest.fixture
def api(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


def test_health_is_the_spec_body(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"service": "agent-orchestrator", "status": "healthy", "version": "0.1.0"}


def test_three_tasks_in_one_request_reach_review_with_correct_costs(api: httpx.Client) -> None:
    since = int(time.time() * 1000) - 1
    ids = submit(api, task_request("one"), task_request("two", "refactor"), task_request("three", "debug"))
    assert len(set(ids)) == 3

    tasks = [wait_for(api, task_id, in_review_and_charged) for task_id in ids]

    for task in tasks:
        assert len(task["subtasks"]) == 2
        first, second = task["subtasks"]
        assert second["dependencies"] == [first["id"]]
        assert set(task["results"]) == {first["id"], second["id"]}
        for result in task["results"].values():
            assert result["success"] is True
            assert result["cost"]["inputTokens"] == 1000
            assert result["cost"]["outputTokens"] == 200
            assert result["cost"]["totalTokens"] == 1200
            assert result["cost"]["estimatedCostUsd"] == pytest.approx(USD_PER_CALL)
        assert task["cost"]["inputTokens"] == 2000
        assert task["cost"]["outputTokens"] == 400
        assert task["cost"]["totalTokens"] == 2400
        assert task["cost"]["estimatedCostUsd"] == pytest.approx(2 * USD_PER_CALL)
        assert task["cost"]["estimatedCostUsd"] == pytest.approx(
            sum(r["cost"]["estimatedCostUsd"] for r in task["results"].values())
        )
        assert task["createdAt"] <= task["updatedAt"]

    costs = api.get("/costs", params={"since": since}).json()
    by_task = {entry["taskId"]: entry["cost"] for entry in costs["tasks"]}
    assert set(ids) <= set(by_task)
    for task in tasks:
        assert by_task[task["id"]] == task["cost"]
    assert costs["aggregate"]["estimatedCostUsd"] == pytest.approx(sum(c["estimatedCostUsd"] for c in by_task.values()))
    assert costs["aggregate"]["inputTokens"] == sum(c["inputTokens"] for c in by_task.values())


def test_codegen_output_feeds_the_dependent_test_subtask(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request())
    task = wait_for(api, task_id, in_review_and_charged)
    codegen, test = task["subtasks"]
    written = task["results"][codegen["id"]]["output"]["files"]["src/register.py"]
    assert written.startswith("def register(user):")
    # The test agent saw the codegen result, not the original snapshot.
    tested = task["results"][test["id"]]["output"]["files"]["src/register.py"]
    assert tested.startswith(written.rstrip("\n"))


def test_approve_completes_the_task(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request())
    wait_for(api, task_id, in_review_and_charged)

    response = api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"})

    assert response.status_code == 200
    assert response.json() == {"status": "approved"}
    assert get_task(api, task_id)["status"] in ("approved", "completed")
    assert wait_for(api, task_id, status_is("completed"))["status"] == "completed"


def test_reject_fails_the_task_with_the_feedback_as_error(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request())
    wait_for(api, task_id, in_review_and_charged)

    response = api.post(
        f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "reject", "feedback": "Wrong approach"}
    )

    assert response.status_code == 200
    task = wait_for(api, task_id, status_is("failed"))
    assert task["error"] == "Wrong approach"


def test_revise_fails_the_task_and_starts_a_new_execution_with_the_feedback(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request("Add input validation"))
    wait_for(api, task_id, in_review_and_charged)

    response = api.post(
        f"/tasks/{task_id}/review",
        json={"taskId": task_id, "decision": "revise", "feedback": "Also validate the email"},
    )

    assert response.status_code == 200
    old = wait_for(api, task_id, lambda t: t["status"] == "failed" and "revisedBy" in t)
    assert "Also validate the email" in old["error"]
    new = wait_for(api, old["revisedBy"], in_review_and_charged)
    assert new["revisionOf"] == task_id
    assert new["request"]["description"].startswith("Add input validation")
    assert "Also validate the email" in new["request"]["description"]
    assert new["id"] != task_id


def test_a_revision_of_a_description_at_the_limit_goes_on_and_shows_past_the_limit(api: httpx.Client) -> None:
    """The submission's limit is on what a person writes in one go: a revision's description
    (the task's and the feedback together) may be longer, and its state still reads back."""
    description, feedback = "Validate " + "x" * (MAX_TEXT - 9), "Also validate " + "y" * (MAX_TEXT - 14)
    (task_id,) = submit(api, task_request(description))
    wait_for(api, task_id, in_review_and_charged)

    decision = {"taskId": task_id, "decision": "revise", "feedback": feedback}
    assert api.post(f"/tasks/{task_id}/review", json=decision).status_code == 200

    old = wait_for(api, task_id, lambda t: t["status"] == "failed" and "revisedBy" in t)
    new = wait_for(api, old["revisedBy"], in_review_and_charged)
    assert len(new["request"]["description"]) > MAX_TEXT
    assert new["request"]["description"].startswith(description) and new["request"]["description"].endswith(feedback)


def test_review_outside_the_review_state_is_a_400(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request())
    wait_for(api, task_id, in_review_and_charged)
    assert api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"}).status_code == 200
    wait_for(api, task_id, status_is("completed"))

    again = api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"})

    assert again.status_code == 400
    assert again.json()["error"] == "invalid_state_transition"
    assert get_task(api, task_id)["status"] == "completed"


def test_reject_without_feedback_is_a_400_and_changes_nothing(api: httpx.Client) -> None:
    (task_id,) = submit(api, task_request())
    wait_for(api, task_id, in_review_and_charged)

    response = api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "reject"})

    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"}
    assert get_task(api, task_id)["status"] == "review"


def test_unknown_task_is_a_404_with_the_error_body(api: httpx.Client) -> None:
    for task_id in ("550e8400-e29b-41d4-a716-446655440000", "not-a-uuid"):
        response = api.get(f"/tasks/{task_id}")
        assert response.status_code == 404
        assert response.json()["error"] == "Not found"
        assert "message" in response.json()
    review = api.post(
        "/tasks/550e8400-e29b-41d4-a716-446655440000/review",
        json={"taskId": "550e8400-e29b-41d4-a716-446655440000", "decision": "approve"},
    )
    assert review.status_code == 404


def test_unknown_endpoint_is_a_404_with_the_error_body(api: httpx.Client) -> None:
    response = api.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"


def test_a_large_repository_snapshot_goes_through(api: httpx.Client) -> None:
    # Large parameters once deadlocked a pipelined insert while it held the events table lock.
    request = task_request()
    request["repo"]["files"]["docs/big.md"] = "# notes\n" + "lorem ipsum dolor sit amet\n" * 40_000
    (task_id,) = submit(api, request)
    task = wait_for(api, task_id, in_review_and_charged)
    assert len(task["request"]["repo"]["files"]["docs/big.md"]) > 1_000_000
    (small,) = submit(api, task_request("after the big one"))
    wait_for(api, small, in_review_and_charged)
