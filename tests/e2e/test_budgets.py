"""Budget caps (issue 4): work stops before a model call would cross a workspace's or a task's
cap, with a typed event; the task pauses (or fails, per config) and goes on once the cap is
raised. HTTP only, against the local model server (1,000 in / 200 out tokens per call)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import (
    bearer,
    in_review_and_charged,
    model_calls,
    new_workspace,
    status_is,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e

# claude-sonnet-4-20250514: $3 / $15 per million tokens.
USD_PER_CALL = (1000 * 3.0 + 200 * 15.0) / 1_000_000
SMALL = {"maxTokens": 100}  # keeps each call's estimate (prompt + maxTokens) well under a call's cost


@pytest.fixture
def team(stack: Stack) -> Iterator[tuple[httpx.Client, str]]:
    created = new_workspace(stack, "budget")
    headers = bearer(created["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=headers) as client:
        yield client, created["workspaceId"]


def configure(api: httpx.Client, workspace: str, **config: object) -> None:
    response = api.patch(f"/api/v1/workspaces/{workspace}/orchestration/config", json=config)
    assert response.status_code == 200, response.text


def calls_for(stack: Stack, description: str) -> int:
    return len(model_calls(stack, description))


def test_a_workspace_cap_pauses_work_before_it_is_crossed_and_raising_it_resumes(
    stack: Stack, team: tuple[httpx.Client, str]
) -> None:
    api, workspace = team
    (first,) = submit(api, task_request(f"Spend some {uuid.uuid4().hex[:8]}", config=SMALL))
    spent = wait_for(api, first, in_review_and_charged)["cost"]["estimatedCostUsd"]
    assert spent == pytest.approx(2 * USD_PER_CALL)
    configure(api, workspace, budgetUsd=spent + 0.001)  # less than one more call

    description = f"Over the cap {uuid.uuid4().hex[:8]}"
    (second,) = submit(api, task_request(description, config=SMALL))
    paused = wait_for(api, second, status_is("paused"))

    assert paused["paused"]["cap"] == "workspace"
    assert paused["paused"]["limitUsd"] == pytest.approx(spent + 0.001)
    assert paused["paused"]["spentUsd"] == pytest.approx(spent)
    assert paused["paused"]["spentUsd"] + paused["paused"]["estimateUsd"] > paused["paused"]["limitUsd"]
    assert calls_for(stack, description) == 0, "stopped before the call, not after"
    time.sleep(0.5)
    assert api.get(f"/tasks/{second}").json()["task"]["status"] == "paused", "it stays paused"

    configure(api, workspace, budgetUsd=1.0)
    resumed = wait_for(api, second, in_review_and_charged)

    assert "paused" not in resumed
    assert calls_for(stack, description) == 2
    assert resumed["cost"]["estimatedCostUsd"] == pytest.approx(2 * USD_PER_CALL)


def test_a_task_cap_fails_the_task_when_the_config_says_so(stack: Stack, team: tuple[httpx.Client, str]) -> None:
    api, workspace = team
    configure(api, workspace, taskBudgetUsd=0.001, onBudgetExceeded="fail")
    description = f"Too dear {uuid.uuid4().hex[:8]}"

    (task_id,) = submit(api, task_request(description, config=SMALL))
    task = wait_for(api, task_id, status_is("failed"))

    assert "stopped by the task budget cap: $0.0000 spent of $0.0010" in task["error"]
    assert calls_for(stack, description) == 0
