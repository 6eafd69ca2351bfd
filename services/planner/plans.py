"""Template plans: the subtask DAG each agent type decomposes into.

Each step names the agent that does it and the steps it depends on. A subtask runs once all
of its dependencies have succeeded; steps without a dependency between them run in parallel.
"""

from __future__ import annotations

import hashlib

from contracts.payloads.shapes import PlannedSubtask

# (agent type, description template, dependencies by step index)
Step = tuple[str, str, tuple[int, ...]]

TEMPLATES: dict[str, tuple[Step, ...]] = {
    "codegen": (("codegen", "{d}", ()), ("test", "Write tests for: {d}", (0,))),
    "refactor": (("refactor", "{d}", ()), ("test", "Check behaviour is unchanged after: {d}", (0,))),
    "debug": (("debug", "{d}", ()), ("test", "Write a regression test for: {d}", (0,))),
    "dependency": (("dependency", "{d}", ()), ("test", "Verify the project still works after: {d}", (0,))),
    "test": (("test", "{d}", ()), ("review", "Review the tests written for: {d}", (0,))),
    "review": (("review", "{d}", ()),),
}


def subtask_id(task_id: str, index: int) -> str:
    return hashlib.sha256(f"{task_id}:{index}".encode()).hexdigest()[:8]


def plan(task_id: str, agent_type: str, description: str) -> list[PlannedSubtask]:
    steps = TEMPLATES[agent_type]
    ids = [subtask_id(task_id, i) for i in range(len(steps))]
    return [
        PlannedSubtask(
            id=ids[i],
            agent_type=kind,
            description=template.format(d=description),
            dependencies=[ids[d] for d in deps],
        )
        for i, (kind, template, deps) in enumerate(steps)
    ]
