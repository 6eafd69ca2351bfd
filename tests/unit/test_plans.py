"""Template plans: a subtask DAG for every agent type, with stable subtask ids."""

from __future__ import annotations

import re
import uuid

import msgspec
import pytest

from contracts.payloads.shapes import PlannedSubtask
from contracts.tasks import AgentType, Subtask
from services.planner.plans import TEMPLATES, plan, subtask_id

TASK_ID = "5b1e7c2a-1111-4a4a-8b8b-000000000001"
HEX8 = re.compile(r"[0-9a-f]{8}")


def test_every_agent_type_has_a_template() -> None:
    assert set(TEMPLATES) == {a.value for a in AgentType}


@pytest.mark.parametrize("agent_type", list(AgentType))
def test_every_plan_is_a_dag_over_earlier_subtasks(agent_type: AgentType) -> None:
    subtasks = plan(TASK_ID, agent_type.value, "Do the thing")

    assert subtasks, "a plan has at least one subtask"
    seen: set[str] = set()
    for s in subtasks:
        assert set(s.dependencies) <= seen, f"{s.id} depends on a later or unknown subtask"
        seen.add(s.id)
    assert len(seen) == len(subtasks)
    assert subtasks[0].agent_type == agent_type.value
    assert subtasks[0].dependencies == []


@pytest.mark.parametrize("agent_type", list(AgentType))
def test_every_plan_converts_to_the_wire_subtask(agent_type: AgentType) -> None:
    wire = msgspec.to_builtins(plan(TASK_ID, agent_type.value, "Do the thing"))
    subtasks = msgspec.convert(wire, list[Subtask])

    assert all(isinstance(s.agent_type, AgentType) for s in subtasks)


def test_codegen_plan_is_codegen_then_its_tests() -> None:
    codegen, test = plan(TASK_ID, "codegen", "Add a /health endpoint")

    assert codegen == PlannedSubtask(
        id=subtask_id(TASK_ID, 0), agent_type="codegen", description="Add a /health endpoint", dependencies=[]
    )
    assert test == PlannedSubtask(
        id=subtask_id(TASK_ID, 1),
        agent_type="test",
        description="Write tests for: Add a /health endpoint",
        dependencies=[codegen.id],
    )


def test_review_plan_is_a_single_review() -> None:
    (only,) = plan(TASK_ID, "review", "Review the auth module")

    assert only.agent_type == "review"
    assert only.description == "Review the auth module"
    assert only.dependencies == []


def test_description_with_braces_is_kept_verbatim() -> None:
    description = "Return {'ok': True} from handler() and format {d}"

    codegen, test = plan(TASK_ID, "codegen", description)

    assert codegen.description == description
    assert test.description == f"Write tests for: {description}"


def test_unknown_agent_type_is_refused() -> None:
    with pytest.raises(KeyError):
        plan(TASK_ID, "poetry", "Write a sonnet")


def test_subtask_ids_are_eight_hex_chars() -> None:
    for agent_type in AgentType:
        for s in plan(TASK_ID, agent_type.value, "x"):
            assert HEX8.fullmatch(s.id), s.id


def test_subtask_ids_are_deterministic_per_task() -> None:
    first = [s.id for s in plan(TASK_ID, "codegen", "one description")]
    again = [s.id for s in plan(TASK_ID, "codegen", "another description")]

    assert first == again
    assert first == [subtask_id(TASK_ID, 0), subtask_id(TASK_ID, 1)]


def test_subtask_ids_are_distinct_across_tasks() -> None:
    task_ids = [str(uuid.UUID(int=i)) for i in range(200)]
    ids = [s.id for t in task_ids for s in plan(t, "codegen", "x")]

    assert len(set(ids)) == len(ids)
