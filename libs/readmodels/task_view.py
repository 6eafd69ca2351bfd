"""The task view: a pure fold of events into the TaskState that `GET /tasks/{id}` serves."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.events import Event
from contracts.payloads.ledger import LedgerCharged
from contracts.payloads.task import (
    TaskApproved,
    TaskCancelled,
    TaskCompleted,
    TaskFailed,
    TaskPaused,
    TaskPlanned,
    TaskResumed,
    TaskRetried,
    TaskReviewRequested,
    TaskRevisionRequested,
    TaskStarted,
    TaskSubmitted,
    TaskSubtaskDispatched,
    TaskSubtaskFailed,
    TaskSubtaskSucceeded,
)

# The statuses a task ends in: its `completedAt` is when it reached one.
FINAL = frozenset({"completed", "failed", "cancelled"})

ZERO_COST = {
    "inputTokens": 0,
    "outputTokens": 0,
    "totalTokens": 0,
    "estimatedCostUsd": 0.0,
    "cpuTimeMs": 0,
    "subrequests": 0,
}


class TaskView:
    """A task row: the served state plus costs charged to subtasks not yet reported.

    It applies typed events (`contracts.events.typed`); what the state keeps of a payload (the
    subtasks, a result) is the Struct's `msgspec.to_builtins`, the JSON the event carries. The
    request is the row's own column, written with the row and never again (`request`: set only
    on a view of a task just submitted); `schema.TASK_STATE` puts it back into the state served."""

    def __init__(
        self, state: dict[str, Any], subtask_costs: dict[str, dict[str, Any]], request: dict[str, Any] | None = None
    ) -> None:
        self.state = state
        self.subtask_costs = subtask_costs
        self.request = request
        # The status changes the events applied here made, in order: `rm_task_history` rows.
        self.transitions: list[dict[str, Any]] = []

    @classmethod
    def submitted(cls, e: Event[TaskSubmitted]) -> TaskView:
        p = e.payload
        state: dict[str, Any] = {
            "id": e.aggregate_id,
            "status": "pending",
            "subtasks": msgspec.to_builtins(p.subtasks),
            "results": {},
            "cost": dict(ZERO_COST),
            "createdAt": e.occurred_at,
            "updatedAt": e.occurred_at,
        }
        if p.revision_of:
            state["revisionOf"] = p.revision_of
        if p.retry_of:
            state["retryOf"] = p.retry_of
        view = cls(state, {}, p.request)
        view._moved(e, None)
        return view

    def apply(self, e: Event[Any]) -> None:
        s = self.state
        s["updatedAt"] = max(s["updatedAt"], e.occurred_at)
        before = s["status"]
        self._apply(e)
        if s["status"] != before:
            self._moved(e, before)

    def _moved(self, e: Event[Any], previous: str | None) -> None:
        """The task's status changed at `e`: its times (`startedAt`: when it first ran,
        `completedAt`: when it ended), and a transition for the history."""
        s = self.state
        status = s["status"]
        if status == "running":
            s.setdefault("startedAt", e.occurred_at)
        if status in FINAL:
            s["completedAt"] = e.occurred_at
        self.transitions.append(
            {
                "seq": e.seq,
                "workspace_id": e.workspace_id,
                "task_id": s["id"],
                "status": status,
                "previous_status": previous,
                "occurred_at": e.occurred_at,
                "queued_at": s["createdAt"],
                "started_at": s.get("startedAt"),
                "completed_at": s.get("completedAt"),
                "error": s.get("error") if status in ("failed", "cancelled") else None,
            }
        )

    def _apply(self, e: Event[Any]) -> None:
        s = self.state
        match e.payload:
            case TaskSubtaskDispatched():
                if s["status"] == "pending":
                    s["status"] = "assigned"
            case TaskStarted():
                s["status"] = "running"
            case TaskPaused(subtask_id=subtask_id, cap=cap):
                s["status"] = "paused"
                s["paused"] = {
                    "subtaskId": subtask_id,
                    "cap": cap.cap,
                    "limitUsd": cap.limit_usd,
                    "spentUsd": cap.spent_usd,
                    "estimateUsd": cap.estimate_usd,
                }
            case TaskResumed():
                s["status"] = "running"
                s.pop("paused", None)
            case TaskPlanned() as p:
                s["subtasks"] = msgspec.to_builtins(p.subtasks)
                s["plan"] = {"source": p.source}
                if p.fallback_reason:
                    s["plan"]["fallbackReason"] = p.fallback_reason
            case TaskSubtaskSucceeded() as p:
                result = msgspec.to_builtins(p.result)
                result["cost"] = dict(self.subtask_costs.get(p.subtask_id, ZERO_COST))
                s["results"][p.subtask_id] = result
                if s["status"] != "paused":  # another subtask's result does not unpause the task
                    s["status"] = "running"
            case TaskSubtaskFailed() as p:
                s["results"][p.subtask_id] = {
                    "subtaskId": p.subtask_id,
                    "agentType": _agent_type(s, p.subtask_id),
                    "success": False,
                    "error": p.error,
                    "attempts": p.attempts,
                    "cost": dict(self.subtask_costs.get(p.subtask_id, ZERO_COST)),
                    "durationMs": 0,
                }
            case TaskFailed() as p:
                s["status"] = "failed"
                s["error"] = p.error or None
            case TaskCancelled() as p:
                s["status"] = "cancelled"
                s["error"] = p.reason
            case TaskRevisionRequested() as p:
                s["revisedBy"] = p.revision_id
            case TaskRetried() as p:
                s["retriedBy"] = p.retry_id
            case TaskCompleted() as p:
                s["status"] = "completed"
                if p.pr_url:
                    s["prUrl"] = p.pr_url
            case LedgerCharged() as p:
                self._charge(p)
            case TaskReviewRequested():
                s["status"] = "review"
            case TaskApproved():
                s["status"] = "approved"

    def _charge(self, p: LedgerCharged) -> None:
        sub = self.subtask_costs.setdefault(p.subtask_id, dict(ZERO_COST))
        charge = msgspec.structs.asdict(p)  # a charge as `rm_charges` holds it, which `add_charge` sums
        for cost in (sub, self.state["cost"]):
            add_charge(cost, charge)
        result = self.state["results"].get(p.subtask_id)
        if result is not None:
            result["cost"] = dict(sub)


def add_charge(cost: dict[str, Any], p: dict[str, Any]) -> None:
    """Adds a charge (a row of `rm_charges`, or a sum of them) to a cost."""
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
