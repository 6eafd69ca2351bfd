"""The task view: a pure fold of events into the TaskState that `GET /tasks/{id}` serves."""

from __future__ import annotations

from typing import Any

from contracts.events import EventEnvelope

ZERO_COST = {
    "inputTokens": 0,
    "outputTokens": 0,
    "totalTokens": 0,
    "estimatedCostUsd": 0.0,
    "cpuTimeMs": 0,
    "subrequests": 0,
}

STATUS_AFTER = {
    "task.review_requested": "review",
    "task.approved": "approved",
}


class TaskView:
    """A task row: the served state plus costs charged to subtasks not yet reported."""

    def __init__(self, state: dict[str, Any], subtask_costs: dict[str, dict[str, Any]]) -> None:
        self.state = state
        self.subtask_costs = subtask_costs

    @classmethod
    def submitted(cls, e: EventEnvelope) -> TaskView:
        state: dict[str, Any] = {
            "id": e.aggregate_id,
            "status": "pending",
            "request": e.payload["request"],
            "subtasks": e.payload["subtasks"],
            "results": {},
            "cost": dict(ZERO_COST),
            "createdAt": e.occurred_at,
            "updatedAt": e.occurred_at,
        }
        if e.payload.get("revision_of"):
            state["revisionOf"] = e.payload["revision_of"]
        return cls(state, {})

    def apply(self, e: EventEnvelope) -> None:
        s, p = self.state, e.payload
        s["updatedAt"] = max(s["updatedAt"], e.occurred_at)
        match e.type:
            case "task.subtask_dispatched":
                if s["status"] == "pending":
                    s["status"] = "assigned"
            case "task.started":
                s["status"] = "running"
            case "task.paused":
                s["status"] = "paused"
                cap = p["cap"]
                s["paused"] = {
                    "subtaskId": p["subtask_id"],
                    "cap": cap["cap"],
                    "limitUsd": cap["limit_usd"],
                    "spentUsd": cap["spent_usd"],
                    "estimateUsd": cap["estimate_usd"],
                }
            case "task.resumed":
                s["status"] = "running"
                s.pop("paused", None)
            case "task.planned":
                s["subtasks"] = p["subtasks"]
                s["plan"] = {"source": p["source"]}
                if p.get("fallback_reason"):
                    s["plan"]["fallbackReason"] = p["fallback_reason"]
            case "task.subtask_succeeded":
                result = dict(p["result"])
                result["cost"] = dict(self.subtask_costs.get(p["subtask_id"], ZERO_COST))
                s["results"][p["subtask_id"]] = result
                if s["status"] != "paused":  # another subtask's result does not unpause the task
                    s["status"] = "running"
            case "task.subtask_failed":
                s["results"][p["subtask_id"]] = {
                    "subtaskId": p["subtask_id"],
                    "agentType": _agent_type(s, p["subtask_id"]),
                    "success": False,
                    "error": p["error"],
                    "attempts": p.get("attempts", 1),
                    "cost": dict(self.subtask_costs.get(p["subtask_id"], ZERO_COST)),
                    "durationMs": 0,
                }
            case "task.failed" | "task.cancelled":
                s["status"] = "failed" if e.type == "task.failed" else "cancelled"
                s["error"] = p.get("error") or p.get("reason")
            case "task.revision_requested":
                s["revisedBy"] = p["revision_id"]
            case "task.completed":
                s["status"] = "completed"
                if p.get("pr_url"):
                    s["prUrl"] = p["pr_url"]
            case "ledger.charged":
                self._charge(p)
            case _ if e.type in STATUS_AFTER:
                s["status"] = STATUS_AFTER[e.type]

    def _charge(self, p: dict[str, Any]) -> None:
        sub = self.subtask_costs.setdefault(p["subtask_id"], dict(ZERO_COST))
        for cost in (sub, self.state["cost"]):
            add_charge(cost, p)
        result = self.state["results"].get(p["subtask_id"])
        if result is not None:
            result["cost"] = dict(sub)


def add_charge(cost: dict[str, Any], p: dict[str, Any]) -> None:
    tokens_in = p["input_tokens"] + p["cache_read_tokens"] + p["cache_write_tokens"]
    cost["inputTokens"] += tokens_in
    cost["outputTokens"] += p["output_tokens"]
    cost["totalTokens"] += tokens_in + p["output_tokens"]
    cost["estimatedCostUsd"] = round(cost["estimatedCostUsd"] + p["cost_usd"], 8)
    cost["cpuTimeMs"] += p["cpu_time_ms"]
    cost["subrequests"] += p["subrequests"]
    if p.get("estimated"):
        # Part of it is an estimate (a model call an interrupted run had in flight); absent
        # otherwise, so a cost without one reads as it always has.
        cost["estimated"] = True


def _agent_type(state: dict[str, Any], subtask_id: str) -> str:
    return next((s["agentType"] for s in state["subtasks"] if s["id"] == subtask_id), "codegen")
