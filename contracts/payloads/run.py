"""The payloads of a Run's events (owner: the executor): `run.<event>` on the wire.

`agent_type` on a run's later events names the agent for its live log lines; `""` in an event
stored before it did."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import BudgetCap, Payload, RunOutput


class RunStarted(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str
    attempt: int
    provider: str
    model: str
    retry_of: str | None = None  # a self-heal attempt: the first line of the error it retries


class RunModelCallStarted(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    turn: int
    estimated_usage: dict[str, int]  # input: the request's characters / 4; output: its max_tokens


class RunModelCalled(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str = ""
    provider: str
    model: str
    turn: int
    status: str  # "ok" | "error"
    duration_ms: int
    usage: dict[str, int]
    stop_reason: str | None
    tool_calls: int
    error: str | None


class RunToolCalled(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str = ""
    call_id: str
    tool: str
    status: str  # "ok" | "error"
    title: str
    target: str | None
    duration_ms: int
    error: str | None


class RunSucceeded(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str = ""
    provider: str
    model: str
    output: RunOutput
    usage: dict[str, int]  # input_tokens, output_tokens, cache_read_tokens, cache_write_tokens
    duration_ms: int = 0  # the run's working time
    subrequests: int = 0  # model calls + tool calls
    attempt: int = 1


class RunFailed(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str = ""
    provider: str
    model: str
    error: str
    usage: dict[str, int]
    duration_ms: int = 0
    subrequests: int = 0
    attempt: int = 1
    retryable: bool = False
    output: RunOutput | None = None
    estimated_usage: dict[str, int] | None = None  # included in `usage`; null when it is all counted


class RunBudgetStopped(Payload, frozen=True, kw_only=True):
    task_id: str
    subtask_id: str
    agent_type: str = ""
    provider: str
    model: str
    attempt: int
    cap: BudgetCap
    on_exceeded: str  # "pause" | "fail"
    usage: dict[str, int]
    duration_ms: int
    subrequests: int
    output: RunOutput | None


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "run.started": RunStarted,
    "run.model_call_started": RunModelCallStarted,
    "run.model_called": RunModelCalled,
    "run.tool_called": RunToolCalled,
    "run.succeeded": RunSucceeded,
    "run.failed": RunFailed,
    "run.budget_stopped": RunBudgetStopped,
}
