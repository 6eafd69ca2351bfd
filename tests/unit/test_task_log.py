"""A task's live log lines, derived from its events (`libs.readmodels.task_log.log_entries`):
one case per event type that makes a line, each from the event its aggregate really emits."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest

from contracts.events import EventEnvelope, typed
from contracts.logs import LogEntry
from contracts.payloads.shapes import BudgetCap, RunOutput
from contracts.questions import QuestionItem, ToolRef
from libs.domain.base import EventTypes, event_payload
from libs.domain.gate import QuestionGate
from libs.domain.pull_request import PullRequest
from libs.domain.run import INTERRUPTED, Run
from libs.readmodels.task_log import LOGGED, MAX_MESSAGE_CHARS, log_entries, rows

WORKSPACE = "ws-log"
TASK = str(uuid.uuid4())
WORKER = f"{TASK[:8]}-codegen-1"
USAGE = {"input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 0, "cache_write_tokens": 0}


def envelope(event: Any, seq: int = 7) -> EventEnvelope:
    """The envelope the event store serves for a domain event."""
    return EventEnvelope(
        seq=seq,
        type=EventTypes.name(type(event)),
        workspace_id=event.workspace_id,
        aggregate_id=str(event.originator_id),
        version=event.originator_version,
        occurred_at=int(event.timestamp.timestamp() * 1000),
        payload=event_payload(event),
    )


def last_event(aggregate: Any) -> EventEnvelope:
    return envelope(aggregate.collect_events()[-1])


def run(attempt: int = 1, retry_of: str | None = None) -> Run:
    return Run.start(WORKSPACE, TASK, "codegen-1", "codegen", attempt, "anthropic", "claude-x", retry_of)


def only(event: EventEnvelope) -> LogEntry:
    (entry,) = log_entries(typed(event))  # typed as the projector and the log follower type it
    assert entry.task_id == TASK
    assert entry.timestamp == event.occurred_at
    return entry


def line(event: EventEnvelope) -> tuple[str, str]:
    entry = only(event)
    return entry.level, entry.message


def test_a_run_start_says_which_attempt_and_model() -> None:
    entry = only(last_event(run()))
    assert (entry.level, entry.message) == ("log", "[codegen] attempt 1 started with anthropic claude-x")
    assert entry.worker_id == WORKER


def test_a_self_heal_retry_says_what_it_retries() -> None:
    started = last_event(run(2, "src/app.py: invalid syntax"))
    assert line(started) == (
        "log",
        "[codegen] attempt 2 started with anthropic claude-x (self-heal retry of: src/app.py: invalid syntax)",
    )


def test_a_model_call_gives_its_tokens_tool_calls_and_time_or_its_error() -> None:
    r = run()
    r.record_model_call(1, True, 35, USAGE, "tool_use", 2, None)
    assert line(last_event(r)) == ("log", "[codegen] model call 1: 1000 in / 200 out tokens, 2 tool call(s), 35 ms")
    r.record_model_call(2, False, 12, {}, None, 0, "overloaded")
    assert line(last_event(r)) == ("error", "[codegen] model call 2 failed: overloaded")


def test_a_tool_call_is_its_title_and_a_failed_one_warns() -> None:
    r = run()
    r.record_tool_call("c1", "write_file", True, "Wrote src/app.py (66 bytes)", "src/app.py", 1, None)
    entry = only(last_event(r))
    assert (entry.level, entry.message, entry.worker_id) == ("log", "[codegen] Wrote src/app.py (66 bytes)", WORKER)
    r.record_tool_call("c2", "read_file", False, "Read src/x.py: not found", "src/x.py", 1, "not found")
    assert line(last_event(r)) == ("warn", "[codegen] Read src/x.py: not found")


def test_a_run_that_succeeds_says_how_long_it_took_and_its_summary() -> None:
    r = run()
    r.succeed(RunOutput(files={}, summary="added validation"), USAGE, 420, 3)
    assert line(last_event(r)) == ("log", "[codegen] finished in 420 ms: added validation")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            "the output failed the checks:\nsrc/app.py: invalid syntax\n  line 2",
            ("warn", "attempt 1 failed the checks: src/app.py: invalid syntax"),
        ),
        ("model timed out", ("error", "attempt 1 failed: model timed out")),
        ("the agent failed unexpectedly", ("error", "the agent failed unexpectedly")),
        (INTERRUPTED, ("warn", "attempt 1 was interrupted: its executor stopped")),
        ("stopped: the workspace was purged", ("warn", "attempt 1 stopped: the workspace was purged")),
    ],
)
def test_a_failed_run_says_how_it_failed(error: str, expected: tuple[str, str]) -> None:
    r = run()
    r.fail(error, USAGE, 10, 1)
    level, message = expected
    assert line(last_event(r)) == (level, f"[codegen] {message}")


def test_a_budget_stop_says_what_the_call_could_cost_and_what_is_left() -> None:
    r = run()
    cap = BudgetCap(cap="task", limit_usd=0.5, spent_usd=0.45, estimate_usd=0.0734)
    r.stop_for_budget(cap, "pause", USAGE, 10, 1, None)
    assert line(last_event(r)) == (
        "warn",
        "[codegen] stopped before a model call: it could cost $0.0734, and the task budget ($0.5000) has $0.0500 left",
    )


def test_an_agents_question_waits_for_a_human_then_is_answered_or_expires() -> None:
    def gate() -> QuestionGate:
        question = QuestionItem(question="Which database?", header="DB", options=[], multiple=False, custom=True)
        return QuestionGate.ask(
            WORKSPACE,
            "que_1",
            TASK,
            "run-1",
            [question],
            ToolRef(message_id="m", call_id="c"),
            10**13,
            "codegen-1",
            "codegen",
        )

    asked = gate()
    entry = only(last_event(asked))
    assert (entry.level, entry.message, entry.worker_id) == (
        "log",
        "[codegen] waiting for a human: Which database? (question que_1)",
        WORKER,
    )
    asked.answer([["Postgres"]])
    answered = only(last_event(asked))
    assert (answered.level, answered.message, answered.worker_id) == (
        "log",
        "[codegen] a human answered question que_1",
        WORKER,
    )
    expired = gate()
    expired.expire()
    assert line(last_event(expired)) == ("warn", "[codegen] question que_1 expired without an answer")


@pytest.mark.parametrize(
    ("pull", "message"),
    [
        (
            lambda: PullRequest.opened(WORKSPACE, TASK, "https://gh/acme/api/pull/3", 3),
            "pull request opened: https://gh/acme/api/pull/3",
        ),
        (
            lambda: PullRequest.skipped(WORKSPACE, TASK, "no GitHub credentials configured"),
            "no pull request opened: no GitHub credentials configured",
        ),
        (
            lambda: PullRequest.failed(WORKSPACE, TASK, "422 Validation Failed"),
            "no pull request opened: 422 Validation Failed",
        ),
    ],
)
def test_a_pull_request_is_the_executors_line(pull: Any, message: str) -> None:
    entry = only(last_event(pull()))
    assert (entry.level, entry.message, entry.worker_id) == ("log", f"[executor] {message}", TASK[:8])


def test_other_events_make_no_line() -> None:
    r = run()
    r.start_model_call(2, {"input_tokens": 10, "output_tokens": 20})
    started_call = last_event(r)
    assert started_call.type not in LOGGED
    assert log_entries(typed(started_call)) == []


def test_keys_are_masked_and_long_messages_cut() -> None:
    r = run()
    r.fail("bad key sk-ant-api03-abcdefghijklmnop " + "x" * 10_000, USAGE, 10, 1)
    entry = only(last_event(r))
    assert "sk-ant" not in entry.message and "[redacted]" in entry.message
    assert len(entry.message) == MAX_MESSAGE_CHARS and entry.message.endswith(" [truncated]")


def test_rows_key_each_line_by_its_events_seq_and_place() -> None:
    r = run()
    r.record_tool_call("c1", "list_files", True, "Listed 1 file(s)", None, 1, None)
    events = [envelope(e, seq) for seq, e in enumerate(r.collect_events(), start=40)]
    found = rows([typed(e) for e in events])
    assert [(row["seq"], row["ordinal"], row["task_id"], row["workspace_id"]) for row in found] == [
        (40, 0, TASK, WORKSPACE),
        (41, 0, TASK, WORKSPACE),
    ]
    # The entry as the WebSocket sends it: the spec's LogEntry, camelCase.
    assert msgspec.to_builtins(found[1]["entry"]) == {
        "level": "log",
        "message": "[codegen] Listed 1 file(s)",
        "timestamp": events[1].occurred_at,
        "workerId": WORKER,
        "taskId": TASK,
    }
