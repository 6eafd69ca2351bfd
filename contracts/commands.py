"""Bodies of the NATS request/reply commands between the gateway and the aggregate owners."""

from __future__ import annotations

from typing import Any

import msgspec


class SubmitTasksCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    tasks: list[dict[str, Any]]  # validated `TaskRequest`s, in wire form
    # The same key again creates nothing: the tasks' ids derive from it (`keyed_task_id`), and
    # the reply names the tasks made the first time, `status: existing`. For senders that may
    # send one submission twice (a redelivered webhook).
    idempotency_key: str | None = None


class StartOrchestrationCommand(msgspec.Struct, frozen=True, kw_only=True):
    """Start a run of a definition (spec 004). The gateway owns the definitions: it sends the one
    it serves, with its digest, and the planner stores it with the run."""

    workspace_id: str
    orchestration: dict[str, Any]  # a checked `contracts.orchestrations.Orchestration`, in wire form
    digest: str
    message: str
    max_cost_usd: float | None = None  # the run's own limit (None: the definition's)
    files: dict[str, str] | None = None  # the run's repository (path -> content): the first files key


class ResumeOrchestrationCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A person's response to the gate an orchestration run is paused at (spec 004's resume), to
    review, which records it once; the planner then goes on with the run."""

    workspace_id: str
    run_id: str  # spec 004's
    response: Any  # as the client sent it: an object of field -> value, or a plain string


class StopTaskCommand(msgspec.Struct, frozen=True):
    """Cancel a task that has not finished (spec 003's stop), to the owner of Tasks."""

    workspace_id: str
    task_id: str


class RetryTaskCommand(msgspec.Struct, frozen=True):
    """Run a failed or cancelled task again as a new task linked to it (spec 003's retry). The
    reply names the new task; `status` is `created`, or `existing` when the task was retried
    already (the same request sent again creates nothing)."""

    workspace_id: str
    task_id: str


class DecideReviewCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    task_id: str
    decision: str
    feedback: str | None = None


class AskQuestionCommand(msgspec.Struct, frozen=True):
    """From an agent's run (the executor) to the owner of gates (review)."""

    workspace_id: str
    question_id: str
    task_id: str
    run_id: str
    questions: list[dict[str, Any]]  # `QuestionItem`s, in wire form
    tool: dict[str, str]  # messageID, callID
    # The asking run's subtask and agent type: the task's live log names them with the question.
    subtask_id: str = ""
    agent_type: str = ""


class AnswerQuestionCommand(msgspec.Struct, frozen=True):
    workspace_id: str
    question_id: str
    answers: list[list[str]]


class CommandError(msgspec.Struct, frozen=True):
    status: int
    error: str
    message: str


class CommandReply(msgspec.Struct, frozen=True, omit_defaults=True):
    """`seq` is the last event the command appended: reads wait for the read models to reach it."""

    seq: int = 0
    task_ids: list[str] = []
    run_id: str | None = None  # a started orchestration run's (spec 004's `run_id`)
    gate: str | None = None  # the pause of an orchestration run a resume answered
    status: str | None = None
    # An asked question's expiry (epoch ms): the asking run waits for its outcome until then.
    expires_at: int | None = None
    error: CommandError | None = None


class ClaimRunCommand(msgspec.Struct, frozen=True, kw_only=True):
    """From the agent runtime's edge to the owner of Runs (the executor): claim the oldest
    queued run the session may take, under a lease of `lease_ttl_s`."""

    workspace_id: str
    session_id: str
    provider: str  # the session's, which the run records ("" : the task's)
    model: str
    agent_types: list[str] | None  # None: any
    lease_ttl_s: int
    # When the edge stops waiting for the answer (ms since the epoch): a claim not made by then
    # is not made at all (its token would reach nobody, and the run would sit out its lease).
    deadline_ms: int | None = None
    # This queued run only (a container worker claims the run it was started for); a run kept
    # for a container's session is claimed by that session only.
    run_id: str | None = None


class LeaseCommand(msgspec.Struct, frozen=True, kw_only=True):
    """A call under a lease (`heartbeat`, `complete`, `fail`, `release`), from the session that
    presents the claim token; the owner fences it before anything changes."""

    verb: str  # "heartbeat" | "complete" | "fail" | "release"
    workspace_id: str
    session_id: str
    run_id: str
    claim_token: str
    lease_ttl_s: int | None = None  # heartbeat: the extension (None: the claim's length)
    result: dict[str, Any] | None = None  # complete: contracts.agent_tasks.RunResult, in wire form
    error: str | None = None  # fail
    retryable: bool = True  # fail
    reason: str | None = None  # release
    usage: dict[str, Any] | None = None  # fail, release: contracts.agent_tasks.Usage, in wire form


class LeaseRefusal(msgspec.Struct, frozen=True, kw_only=True):
    """Why the owner refused a lease command: the agent runtime's diagnostic, in parts."""

    status: int
    code: str
    message: str
    evidence: dict[str, Any] = {}
    suggested_command: str | None = None


class LeaseReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What the owner did: the run now (claimed, or ended), with the lease's end and last
    heartbeat; a claim's token, whole, this once; or why it refused."""

    seq: int = 0
    run_id: str | None = None  # None for a claim: nothing ready
    claim_token: str | None = None
    queued_at: int | None = None
    lease_until: int | None = None
    heartbeat_at: int | None = None
    refused: LeaseRefusal | None = None
    error: CommandError | None = None  # a command the owner could not read, or a failure (the runtime's)


class OpenWorkerSession(msgspec.Struct, frozen=True, kw_only=True):
    """From the executor to the owner of agent sessions (the runtime): a session for the
    container it starts to do one run; the token comes back once, in the reply, for the
    container's environment."""

    workspace_id: str
    run_id: str
    name: str
    agent_type: str
    provider: str
    model: str
    ttl_s: int  # the session stops by then, whatever became of its container


class WorkerSessionReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    session_id: str | None = None
    token: str | None = None
    error: CommandError | None = None


class CloseWorkerSession(msgspec.Struct, frozen=True, kw_only=True):
    """The container is gone: its session stops (its token is refused from then on)."""

    workspace_id: str
    session_id: str
    detail: str


class ReportWorker(msgspec.Struct, frozen=True, kw_only=True):
    """A container worker's report of its run's end (`POST /api/callbacks/complete`), with the
    per-run callback token it was started with; the owner checks the token against the hash its
    machine's record keeps."""

    run_id: str
    task_id: str
    token: str
    status: str  # "succeeded" | "failed"
    pr_url: str | None = None
    error: str | None = None
    metadata: dict[str, str | int | float | bool | None] = {}
