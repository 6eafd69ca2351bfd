"""Plans drafted by the model: asked for through one tool call, validated, or replaced by the
template plan with the reason recorded.

A drafted plan is accepted only if every subtask has a known agent type and a description,
ids are unique, every dependency names another subtask, there is no cycle, and it is small
enough to run (MAX_SUBTASKS). Its subtasks get the same deterministic ids as template plans.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from contracts.payloads.shapes import PlannedSubtask
from contracts.tasks import AgentType
from libs.llm.conversation import Tool, Usage, conversation_for
from libs.llm.providers import ProviderError, Providers
from services.planner.plans import plan, subtask_id

log = logging.getLogger(__name__)

MAX_SUBTASKS = 8
MAX_DESCRIPTION_CHARS = 4000
PLAN_MAX_TOKENS = 2048

SUBMIT_PLAN = Tool(
    "submit_plan",
    "Submit the plan: the subtasks, each with the ids of the subtasks it depends on.",
    {
        "type": "object",
        "properties": {
            "subtasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SUBTASKS,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "A short id of your choice, e.g. s1"},
                        "agentType": {"type": "string", "enum": [a.value for a in AgentType]},
                        "description": {"type": "string"},
                        "dependencies": {"type": "array", "items": {"type": "string"}},
                    },
                    "required": ["id", "agentType", "description", "dependencies"],
                },
            }
        },
        "required": ["subtasks"],
    },
)

SYSTEM = (
    "You plan work for a team of coding agents. Split the task into a few subtasks, each done by one "
    "agent: codegen (implements changes), test (writes tests), review (reads and comments, changes "
    "nothing), refactor, debug, dependency (updates dependencies). A subtask runs after the subtasks "
    f"it depends on; independent subtasks run in parallel. Use at most {MAX_SUBTASKS} subtasks, and "
    "prefer fewer. Answer only by calling submit_plan."
)


class Draft:
    """The outcome of asking for a plan: the subtasks to run, and how they came about."""

    def __init__(
        self, subtasks: list[PlannedSubtask], source: str, reason: str | None, usage: Usage | None, duration_ms: int
    ) -> None:
        self.subtasks = subtasks
        self.source = source
        self.fallback_reason = reason
        self.usage = usage
        self.duration_ms = duration_ms


class PlanError(ValueError):
    pass


def prompt(request: dict[str, Any]) -> str:
    paths = "\n".join(sorted(request["repo"]["files"])) or "(no files)"
    return (
        f"Task ({request['agentType']}): {request['description']}\n\n"
        f"Repository {request['repo']['owner']}/{request['repo']['repo']}, files:\n{paths}"
    )


async def draft(providers: Providers, task_id: str, request: dict[str, Any]) -> Draft:
    config = request["config"]
    provider, model = config["provider"], config["model"]
    conversation = conversation_for(provider, SYSTEM)
    conversation.add_user(prompt(request))
    started = time.perf_counter()
    usage: Usage | None = None
    try:
        turn = await providers.converse(
            provider, model, conversation, (SUBMIT_PLAN,), min(PLAN_MAX_TOKENS, config["maxTokens"]), 0.0
        )
        usage = turn.usage
        calls = [u for u in turn.tool_uses if u.name == SUBMIT_PLAN.name]
        if len(calls) != 1:
            raise PlanError(f"the model made {len(calls)} submit_plan calls, not one")
        subtasks = validate(task_id, calls[0].arguments)
    except (ProviderError, PlanError) as exc:
        reason = str(exc)
    except Exception as exc:
        # Whatever else went wrong (an odd answer from an OpenAI-compatible server, say), the
        # task runs on its template rather than waiting for a plan that will not come.
        log.exception("drafting the plan of task %s failed", task_id)
        reason = f"drafting failed ({exc.__class__.__name__})"
    else:
        return Draft(subtasks, "llm", None, usage, int((time.perf_counter() - started) * 1000))
    elapsed = int((time.perf_counter() - started) * 1000)
    fallback = plan(task_id, request["agentType"], request["description"])
    return Draft(fallback, "template", f"the drafted plan was not used: {reason}", usage, elapsed)


def validate(task_id: str, arguments: Any) -> list[PlannedSubtask]:
    """The drafted subtasks in a runnable order with the product's ids, or PlanError."""
    items = arguments.get("subtasks") if isinstance(arguments, dict) else None
    if not isinstance(items, list) or not items:
        raise PlanError("the plan has no subtasks")
    if len(items) > MAX_SUBTASKS:
        raise PlanError(f"the plan has {len(items)} subtasks; at most {MAX_SUBTASKS} are allowed")
    known = {a.value for a in AgentType}
    by_id: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise PlanError("every subtask must be an object")
        given, kind, text, deps = (
            item.get("id"),
            item.get("agentType"),
            item.get("description"),
            item.get("dependencies"),
        )
        if not isinstance(given, str) or not given.strip():
            raise PlanError("every subtask needs an id")
        if given in by_id:
            raise PlanError(f"subtask id '{given}' is used twice")
        if kind not in known:
            raise PlanError(f"subtask '{given}' has an unknown agent type {kind!r}")
        if not isinstance(text, str) or not text.strip() or "\x00" in text or len(text) > MAX_DESCRIPTION_CHARS:
            raise PlanError(f"subtask '{given}' needs a description of at most {MAX_DESCRIPTION_CHARS} characters")
        if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
            raise PlanError(f"subtask '{given}' must list its dependencies as ids")
        by_id[given] = {"id": given, "agentType": kind, "description": text.strip(), "dependencies": list(deps)}
    for item in by_id.values():
        for dep in item["dependencies"]:
            if dep not in by_id or dep == item["id"]:
                raise PlanError(f"subtask '{item['id']}' depends on '{dep}', which is not another subtask of the plan")
    ordered = _topological(by_id)
    ids = {item["id"]: subtask_id(task_id, index) for index, item in enumerate(ordered)}
    return [
        PlannedSubtask(
            id=ids[item["id"]],
            agent_type=item["agentType"],
            description=item["description"],
            dependencies=[ids[d] for d in dict.fromkeys(item["dependencies"])],
        )
        for item in ordered
    ]


def _topological(by_id: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    # Kahn's algorithm, keeping the model's order among subtasks that are ready together.
    waiting = {i: set(item["dependencies"]) for i, item in by_id.items()}
    ordered: list[dict[str, Any]] = []
    while waiting:
        ready = [i for i, deps in waiting.items() if not deps]
        if not ready:
            raise PlanError(f"the plan has a dependency cycle among {', '.join(sorted(waiting))}")
        for i in ready:
            ordered.append(by_id[i])
            del waiting[i]
        for deps in waiting.values():
            deps.difference_update(ready)
    return ordered
