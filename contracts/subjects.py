"""NATS names: the event stream, its subjects, and the command subjects of each owner."""

from __future__ import annotations

EVENTS_STREAM = "EVENTS"
EVENTS_SUBJECTS = "events.>"


def event_subject(workspace_id: str, event_type: str) -> str:
    """`events.<workspace>.<aggregate>.<event>`; event types are `<aggregate>.<event>`."""
    return f"events.{workspace_id}.{event_type}"


def workspace_events(workspace_id: str) -> str:
    return f"events.{workspace_id}.>"


def aggregate_events(aggregate: str) -> str:
    """Every workspace's events of one aggregate type, for a service's durable consumer."""
    return f"events.*.{aggregate}.>"


# Commands go to the single writer of the aggregate they change (request/reply, queue group).
SUBMIT_TASKS = "cmd.planner.submit-tasks"
START_ORCHESTRATION = "cmd.planner.start-orchestration"
STOP_TASK = "cmd.planner.stop-task"
RETRY_TASK = "cmd.planner.retry-task"
DECIDE_REVIEW = "cmd.review.decide"
ASK_QUESTION = "cmd.review.ask"
ANSWER_QUESTION = "cmd.review.answer"
RESUME_ORCHESTRATION = "cmd.review.resume-orchestration"
# Spec 002's leases, from the agent runtime's edge to the owner of Runs.
CLAIM_RUN = "cmd.executor.claim-run"
UNDER_LEASE = "cmd.executor.under-lease"
# Container workers (spec 003): a worker's report, to the owner of its machine and its run.
REPORT_WORKER = "cmd.executor.report-worker"
# From the executor to the owner of agent sessions: a session for a machine it starts, and its end.
OPEN_WORKER_SESSION = "cmd.runtime.open-worker-session"
CLOSE_WORKER_SESSION = "cmd.runtime.close-worker-session"
