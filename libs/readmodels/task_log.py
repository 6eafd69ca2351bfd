"""A task's live log (spec 000's WebSocket), derived from its events: one pure function.

Each log line is what one event says, in words for a person watching the task. The projector
keeps the lines in `rm_task_log` (the backlog a WebSocket sends first) and the gateway derives
them again from the events it follows on `EVENTS` (what comes after), so a line exists exactly
when its event does (invariant 3), and a rebuild writes the same lines.
"""

from __future__ import annotations

from typing import Any

from contracts.events import Event
from contracts.logs import LogEntry, LogLevel, worker_id
from contracts.payloads.pull_request import PullRequestFailed, PullRequestOpened, PullRequestSkipped
from contracts.payloads.question_gate import QuestionGateAnswered, QuestionGateAsked, QuestionGateExpired
from contracts.payloads.run import (
    RunBudgetStopped,
    RunFailed,
    RunLeaseExpired,
    RunModelCalled,
    RunReleased,
    RunStarted,
    RunSucceeded,
    RunToolCalled,
)
from libs.domain.run import INTERRUPTED
from libs.observability.logs import redact

# One entry is one line for a person to read: a whole file pasted into a message is cut, so the
# first message of a task's backlog stays a size a browser handles.
MAX_MESSAGE_CHARS = 4096
_TRUNCATED = " [truncated]"
CHECKS_FAILED = "the output failed the checks:"

# The event types that make lines: a reader can pass over every other without decoding it.
LOGGED = frozenset(
    {
        "run.started",
        "run.model_called",
        "run.tool_called",
        "run.succeeded",
        "run.failed",
        "run.budget_stopped",
        "run.lease_expired",
        "run.released",
        "question_gate.asked",
        "question_gate.answered",
        "question_gate.expired",
        "pull_request.opened",
        "pull_request.skipped",
        "pull_request.failed",
    }
)


def log_entries(event: Event[Any]) -> list[LogEntry]:
    """The task's log lines `event` (typed: `contracts.events.typed`) makes (none for most events)."""
    if event.type not in LOGGED:
        return []
    p = event.payload
    line = _line(p, event.aggregate_id)
    if line is None:
        return []
    level, message = line
    task_id = p.task_id
    if isinstance(p, PullRequestOpened | PullRequestSkipped | PullRequestFailed):
        worker, prefix = task_id[:8], "[executor]"
    else:
        worker, prefix = worker_id(task_id, p.subtask_id or ""), f"[{p.agent_type or 'agent'}]"
    return [
        LogEntry(
            level=level,
            message=_cut(redact(f"{prefix} {message}", ())),
            timestamp=event.occurred_at,
            worker_id=worker,
            task_id=task_id,
        )
    ]


def _line(p: Any, aggregate_id: str) -> tuple[LogLevel, str] | None:
    match p:
        case RunStarted():
            retry = f" (self-heal retry of: {p.retry_of})" if p.retry_of else ""
            # The executor's runs are their own sessions; an agent session's claim is named.
            holder = f" by agent session {p.session_id}" if p.session_id not in (None, aggregate_id) else ""
            return "log", f"attempt {p.attempt} started with {p.provider} {p.model}{retry}{holder}"
        case RunModelCalled():
            if p.status != "ok":
                return "error", f"model call {p.turn} failed: {p.error}"
            u = p.usage
            return "log", (
                f"model call {p.turn}: {u.get('input_tokens', 0)} in / {u.get('output_tokens', 0)} out tokens, "
                f"{p.tool_calls} tool call(s), {p.duration_ms} ms"
            )
        case RunToolCalled():
            return ("log" if p.status == "ok" else "warn"), p.title
        case RunSucceeded():
            return "log", f"finished in {p.duration_ms} ms: {p.output.summary}"
        case RunLeaseExpired():
            return "warn", f"attempt {p.attempt}'s lease expired: agent session {p.session_id} stopped heartbeating"
        case RunFailed():
            return _failed(p)
        case RunReleased():
            reason = f": {p.reason}" if p.reason else ""
            return "log", f"attempt {p.attempt} was given back by agent session {p.session_id}{reason}"
        case RunBudgetStopped(cap=cap):
            left = cap.limit_usd - cap.spent_usd
            return "warn", (
                f"stopped before a model call: it could cost ${cap.estimate_usd:.4f}, and the {cap.cap} budget "
                f"(${cap.limit_usd:.4f}) has ${left:.4f} left"
            )
        case QuestionGateAsked():
            first = p.questions[0].question if p.questions else ""
            return "log", f"waiting for a human: {first} (question {p.question_id})"
        case QuestionGateAnswered():
            return "log", f"a human answered question {p.question_id}"
        case QuestionGateExpired():
            return "warn", f"question {p.question_id} expired without an answer"
        case PullRequestOpened():
            return "log", f"pull request opened: {p.url}"
        case PullRequestSkipped():
            return "log", f"no pull request opened: {p.reason}"
        case PullRequestFailed():
            return "log", f"no pull request opened: {p.error}"
    return None


def _failed(p: RunFailed) -> tuple[LogLevel, str]:
    error, attempt = p.error, p.attempt
    if error.startswith(CHECKS_FAILED):
        return "warn", f"attempt {attempt} failed the checks: {first_line(error.removeprefix(CHECKS_FAILED))}"
    if error == INTERRUPTED:
        return "warn", f"attempt {attempt} was interrupted: its executor stopped"
    if error.startswith("stopped: "):  # its task was stopped (cancelled, its workspace purged)
        return "warn", f"attempt {attempt} {error}"
    if error == "the agent failed unexpectedly":
        return "error", error
    return "error", f"attempt {attempt} failed: {error}"


def first_line(text: str) -> str:
    """The first line of an error, at most 300 characters: what a log line quotes of it."""
    return text.strip().splitlines()[0][:300] if text.strip() else text


def _cut(message: str) -> str:
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - len(_TRUNCATED)] + _TRUNCATED


def rows(events: list[Event[Any]]) -> list[dict[str, Any]]:
    """`rm_task_log` rows of a batch (typed events): one per line, keyed by the event's seq and
    the line's place."""
    return [
        {"task_id": e.payload.task_id, "seq": e.seq, "ordinal": i, "workspace_id": e.workspace_id, "entry": entry}
        for e in events
        if e.type in LOGGED
        for i, entry in enumerate(log_entries(e))
    ]
