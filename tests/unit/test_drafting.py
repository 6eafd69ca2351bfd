"""Drafted plans: validation into the product's subtasks, and the template fallback."""

from __future__ import annotations

from typing import Any

import pytest

from libs.llm.conversation import ToolUse, Turn, Usage
from libs.llm.providers import ProviderError
from services.planner.drafting import MAX_SUBTASKS, PlanError, draft, validate
from services.planner.plans import plan
from tests.factories import stored_request

TASK = "5b0e6a52-4d53-4a43-9a0e-3c2f3b1d9c11"


def step(given: str, agent: str = "codegen", *deps: str) -> dict[str, Any]:
    return {"id": given, "agentType": agent, "description": f"do {given}", "dependencies": list(deps)}


def test_a_valid_plan_is_ordered_and_given_the_products_ids() -> None:
    subtasks = validate(TASK, {"subtasks": [step("t", "test", "c"), step("c"), step("r", "review", "c", "t")]})

    assert [s.agent_type for s in subtasks] == ["codegen", "test", "review"]
    ids = [s.id for s in subtasks]
    assert ids == [s.id for s in plan(TASK, "codegen", "x")] + [ids[2]], "the template's id scheme"
    assert subtasks[1].dependencies == [ids[0]]
    assert subtasks[2].dependencies == [ids[0], ids[1]]


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        ({"subtasks": []}, "no subtasks"),
        ({"subtasks": [step("a"), step("a")]}, "used twice"),
        ({"subtasks": [step("a", "deploy")]}, "unknown agent type"),
        ({"subtasks": [step("a", "codegen", "ghost")]}, "not another subtask"),
        ({"subtasks": [step("a", "codegen", "a")]}, "not another subtask"),
        ({"subtasks": [step("a", "codegen", "b"), step("b", "test", "a")]}, "dependency cycle"),
        ({"subtasks": [step(str(i)) for i in range(MAX_SUBTASKS + 1)]}, "at most"),
        ({"subtasks": [{**step("a"), "description": "  "}]}, "needs a description"),
        ("not an object", "no subtasks"),
    ],
)
def test_an_invalid_plan_is_refused_with_a_reason(arguments: Any, reason: str) -> None:
    with pytest.raises(PlanError, match=reason):
        validate(TASK, arguments)


class Answers:
    """Stands in for the provider clients: answers one turn, or raises."""

    def __init__(self, answer: Turn | Exception) -> None:
        self.answer = answer

    async def converse(self, *args: Any, **kwargs: Any) -> Turn:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def turn(*uses: ToolUse) -> Turn:
    return Turn("", list(uses), Usage(100, 20), "tool_use", 5)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (ProviderError("anthropic returned HTTP 529 (the provider is overloaded)", retryable=True), "HTTP 529"),
        (IndexError("list index out of range"), "drafting failed (IndexError)"),
        (turn(), "0 submit_plan calls"),
        (turn(ToolUse("1", "submit_plan", {"subtasks": [step("a", "codegen", "a")]})), "not another subtask"),
    ],
)
async def test_whatever_goes_wrong_the_task_runs_on_its_template(answer: Turn | Exception, reason: str) -> None:
    request = stored_request("Add a greeting")

    drafted = await draft(Answers(answer), TASK, request)  # type: ignore[arg-type]

    assert drafted.source == "template"
    assert drafted.subtasks == plan(TASK, "codegen", "Add a greeting")
    assert drafted.fallback_reason is not None and reason in drafted.fallback_reason


async def test_a_drafted_plan_keeps_what_it_cost() -> None:
    use = ToolUse("1", "submit_plan", {"subtasks": [step("a")]})

    drafted = await draft(Answers(turn(use)), TASK, stored_request())  # type: ignore[arg-type]

    assert drafted.source == "llm" and drafted.fallback_reason is None
    assert drafted.usage == Usage(100, 20)
