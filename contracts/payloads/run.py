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
    # The lease it runs under (spec 002; absent from a run started before leases: none then).
    # The holder: an agent session's id, or the run's own id for the executor's runs.
    session_id: str | None = None
    lease_until: int | None = None  # ms since the epoch; heartbeats move it (`libs.leases`), not events
    lease_ttl_s: int | None = None  # what each heartbeat extends it by, unless the heartbeat says
    claim_token_hash: str | None = None  # SHA-256 of the claim token, which only the holder has
    handover: int = 0  # how many times this attempt was given back (released) before this run
    dispatch_seq: int | None = None  # the `task.subtask_dispatched` it claims: its input
    previous_run_id: str | None = None  # the run whose lease expired, which this attempt follows
    # What the executor's first model call is estimated to use (input: the request's characters
    # / 4; output: its max_tokens): charged if the run is found unfinished with no call recorded.
    first_call_estimate: dict[str, int] | None = None


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


class RunLeaseExpired(RunFailed, frozen=True, kw_only=True):
    """A failure of its own kind: the holder stopped heartbeating and its lease ran out, so the
    run ended without it (retryable: the next attempt follows it, `previous_run_id`). Appended
    by one actor, the lease sweeper, at the version it read: a `complete` that landed first wins."""

    session_id: str
    lease_until: int  # ms since the epoch: when the lease ended


class RunReleased(Payload, frozen=True, kw_only=True):
    """The holder gave the run back (spec 002's `release`): the same attempt is dispatched again,
    and no attempt is counted."""

    task_id: str
    subtask_id: str
    agent_type: str = ""
    provider: str
    model: str
    attempt: int
    handover: int  # the released run's; the next run of this attempt has handover + 1
    session_id: str
    reason: str | None
    usage: dict[str, int]  # what the holder reports it spent before it gave the run back
    duration_ms: int = 0
    subrequests: int = 0


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "run.started": RunStarted,
    "run.model_call_started": RunModelCallStarted,
    "run.model_called": RunModelCalled,
    "run.tool_called": RunToolCalled,
    "run.succeeded": RunSucceeded,
    "run.failed": RunFailed,
    "run.budget_stopped": RunBudgetStopped,
    "run.lease_expired": RunLeaseExpired,
    "run.released": RunReleased,
}
