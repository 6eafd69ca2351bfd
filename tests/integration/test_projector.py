"""The read-model projector on a real PostgreSQL, fed by a realistic log from the real aggregates."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
import psycopg
import pytest
from psycopg.rows import dict_row

from contracts.events import public_payload, task_of, typed
from contracts.logs import LogEntry
from contracts.payloads.agent_session import PermissionPolicy, SpawnBudget
from contracts.payloads.github_installation import GithubInstallationLinked
from contracts.payloads.shapes import BudgetCap, RunOutput, SubtaskResult
from contracts.payloads.worker_machine import WorkerMachineStarted
from contracts.questions import QuestionItem, QuestionOption, ToolRef
from contracts.tasks import (
    AgentOutput,
    AgentResult,
    AgentType,
    CostBreakdown,
    OriginalRequest,
    Subtask,
    TaskState,
    TaskStatus,
)
from libs.budgets import load_budget
from libs.domain.agent_session import AgentSession
from libs.domain.channel import Channel, ChannelName
from libs.domain.gate import Gate, QuestionGate
from libs.domain.github_account import GitHubAccount
from libs.domain.github_installation import GitHubInstallation
from libs.domain.ledger import Ledger, ledger_id
from libs.domain.pull_request import PullRequest
from libs.domain.run import Claim, Run
from libs.domain.task import Task
from libs.domain.worker_machine import WorkerMachine
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable
from libs.readmodels import projector, schema, task_log, toolcalls
from services.planner.plans import plan
from tests.factories import stored_request

pytestmark = pytest.mark.integration

WS, OTHER_WS = "ws-projector", "ws-projector-2"
SEALED, SEALED_AGAIN = "v1.c2VhbGVkLW9uZQ==", "v1.c2VhbGVkLXR3bw=="  # as libs.secrets.seal makes them
MODEL = "claude-sonnet-4-20250514"
PR_URL = "https://github.com/acme/api/pull/7"


def request(description: str, agent_type: str) -> dict[str, Any]:
    return stored_request(description, agent_type)


def submitted(task_id: uuid.UUID, workspace_id: str, description: str, agent_type: str) -> Task:
    subtasks = plan(str(task_id), agent_type, description)
    return Task.submit(task_id, workspace_id, request(description, agent_type), subtasks)


@dataclass(frozen=True)
class Charge:
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    cpu_time_ms: int
    subrequests: int = 1

    def breakdown(self) -> CostBreakdown:
        tokens_in = self.input_tokens + self.cache_read_tokens + self.cache_write_tokens
        return CostBreakdown(
            input_tokens=tokens_in,
            output_tokens=self.output_tokens,
            total_tokens=tokens_in + self.output_tokens,
            estimated_cost_usd=self.cost_usd,
            cpu_time_ms=self.cpu_time_ms,
            subrequests=self.subrequests,
        )


CODEGEN_CHARGE = Charge(1200, 300, 100, 50, 0.0123, 1500)
TEST_CHARGE = Charge(800, 200, 0, 0, 0.0456, 900)
FAILED_CHARGE = Charge(400, 0, 0, 0, 0.002, 50)
CODEGEN_OUTPUT = RunOutput(files={"src/register.py": "def register(user):\n    validate(user)\n"}, summary="validated")
TEST_OUTPUT = RunOutput(files={"tests/test_register.py": "def test_register():\n    pass\n"}, summary="tested")


def charge(ledger: Ledger, run: Run, c: Charge) -> None:
    ledger.charge(
        run_id=str(run.id),
        subtask_id=run.subtask_id,
        model=MODEL,
        input_tokens=c.input_tokens,
        output_tokens=c.output_tokens,
        cache_read_tokens=c.cache_read_tokens,
        cache_write_tokens=c.cache_write_tokens,
        cost_usd=c.cost_usd,
        cpu_time_ms=c.cpu_time_ms,
        subrequests=c.subrequests,
        priced=True,
    )


def usage(c: Charge) -> dict[str, int]:
    return {
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "cache_read_tokens": c.cache_read_tokens,
        "cache_write_tokens": c.cache_write_tokens,
    }


def succeeded(run: Run, output: RunOutput, duration_ms: int) -> SubtaskResult:
    """The result the planner records for a succeeded run."""
    return SubtaskResult(
        subtask_id=run.subtask_id, agent_type=run.agent_type, success=True, output=output, duration_ms=duration_ms
    )


@dataclass
class Scenario:
    done: Task  # submit -> dispatch -> run -> charges -> review -> approve -> complete
    failed: Task  # another workspace: its only run fails
    runs: list[Run]
    going: Run  # started, two model calls on record, not ended


def live_the_lifecycle(store: EventStore) -> Scenario:
    """What the services would append, step by step, each step its own transaction."""
    done_id, failed_id = uuid.uuid4(), uuid.uuid4()
    done = submitted(done_id, WS, "Add input validation", "codegen")
    failed = submitted(failed_id, OTHER_WS, "Fix the crash", "review")
    for task in (done, failed):
        for subtask in task.ready_subtasks():
            task.dispatch(subtask)
    store.save([done, failed])  # one command, two tasks
    codegen, test = done.subtasks

    # The executor's run holds a lease as its own session; the test run is an agent session's.
    lease = Claim(session_id=None, lease_until=10**13, lease_ttl_s=30, token_hash="a" * 64)
    run1 = Run.start(WS, str(done.id), codegen.id, "codegen", 1, "anthropic", MODEL, claim=lease)
    run3 = Run.start(OTHER_WS, str(failed.id), failed.subtasks[0].id, "review", 1, "anthropic", MODEL)
    store.save([run1, run3])
    done.start()
    failed.start()
    store.save([done, failed])
    # Its model call, saved as it returns; its tool calls, saved with its outcome, as the executor
    # does: the tool log has rows to rebuild, and the run's usage is counted until it is charged.
    run1.record_model_call(1, True, 700, usage(CODEGEN_CHARGE), "tool_use", 3, None)
    store.save([run1])
    run1.record_tool_call(
        "toolu_1", "read_file", False, "Read src/missing.py: not found", "src/missing.py", 2, "not found"
    )
    run1.record_tool_call("toolu_2", "write_file", True, "Wrote src/register.py (40 bytes)", "src/register.py", 3, None)
    run1.record_tool_call("toolu_3", "finish", True, "Finished: validated", None, 0, None)
    run1.succeed(CODEGEN_OUTPUT, usage(CODEGEN_CHARGE), 1500, 1)
    store.save([run1])
    # The cost ledger is faster than the planner for this run...
    ledger = Ledger.open(WS, str(done.id))
    charge(ledger, run1, CODEGEN_CHARGE)
    store.save([ledger])
    done.record_success(codegen.id, str(run1.id), succeeded(run1, CODEGEN_OUTPUT, 1500))
    for subtask in done.ready_subtasks():
        done.dispatch(subtask)
    store.save([done])

    run3.fail("provider exploded", usage(FAILED_CHARGE), 50, 1)
    store.save([run3])
    failed.attempt_failed(run3.subtask_id, str(run3.id), 1, "provider exploded", retryable=False, output=None)
    store.save([failed])
    other_ledger = Ledger.open(OTHER_WS, str(failed.id))
    charge(other_ledger, run3, FAILED_CHARGE)  # charged after the task already failed
    store.save([other_ledger])

    held = Claim(session_id="session-1", lease_until=10**13, lease_ttl_s=30, token_hash="b" * 64)
    run2 = Run.start(WS, str(done.id), test.id, "test", 1, "anthropic", MODEL, claim=held)
    store.save([run2])
    run2.succeed(TEST_OUTPUT, usage(TEST_CHARGE), 900, 1)
    store.save([run2])
    # ...and slower for this one: the result is recorded before it is priced.
    done.record_success(test.id, str(run2.id), succeeded(run2, TEST_OUTPUT, 900))
    done.request_review()
    store.save([done])
    charge(ledger, run2, TEST_CHARGE)
    store.save([ledger])

    gate = Gate.open_review(WS, str(done.id))
    store.save([gate])
    gate.decide("approve", "ship it")
    store.save([gate])
    done.approve("ship it")
    store.save([done])
    store.save([PullRequest.opened(WS, str(done.id), PR_URL, 7)])
    done.complete(PR_URL, None)
    store.save([done])

    # A run still going in the other workspace (a retry of the failed task's review, say): its
    # two model calls so far are used, not charged.
    run4 = Run.start(OTHER_WS, str(failed.id), failed.subtasks[0].id, "review", 2, "anthropic", MODEL)
    store.save([run4])
    run4.record_model_call(1, True, 300, usage(FAILED_CHARGE), "tool_use", 1, None)
    store.save([run4])
    run4.record_model_call(2, True, 300, usage(FAILED_CHARGE), "tool_use", 1, None)
    store.save([run4])
    return Scenario(done=done, failed=failed, runs=[run1, run2, run3], going=run4)


@pytest.fixture
def conn(postgres_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


@pytest.fixture
def scenario(store: EventStore) -> Scenario:
    # The workspace's own life too: a key issued and revoked, a config changed twice.
    workspace = Workspace.create(WS, "the projector's workspace")
    first = workspace.issue_key("first").split("_")[1]
    workspace.issue_key("second")
    workspace.revoke_key(first)
    workspace.update_config({"budgetUsd": 5.0}, {"budgetUsd": 5.0})
    workspace.update_config({"team": {"a": 1}}, {"budgetUsd": 5.0, "team": {"a": 1}})
    # Its credentials: a provider key stored, stored again, a GitHub token stored and cleared.
    workspace.set_secret("anthropic_api_key", SEALED, "1111")
    workspace.set_secret("anthropic_api_key", SEALED_AGAIN, "2222")
    workspace.set_secret("github_token", SEALED, "3333")
    workspace.clear_secret("github_token")
    # An agent's questions: one answered, one still open.
    question = QuestionItem(question="Which one?", header="Pick", options=[QuestionOption(label="A")])
    asked = [
        QuestionGate.ask(
            WS, f"que_{i}", "task-1", "run-1", [question], ToolRef(message_id="m", call_id=f"c{i}"), 10**13
        )
        for i in range(2)
    ]
    asked[0].answer([["A"]])
    # Agent sessions: a parent, its child, and the parent's stop taking the child with it.
    lead, _ = AgentSession.create(WS, "lead", "coder", "m", "anthropic", ["codegen"], None, SpawnBudget(max_children=1))
    child, _ = lead.spawn("coder", "helper", PermissionPolicy(), True, 10**13)
    store.save([workspace, *asked, lead, child])
    lead.stop("stopped_by_user", "done")
    child.stop("parent_stopped", "its parent stopped")
    store.save([lead, child])
    # Sessions coordinating on a task's channel: a question, and the answer to it.
    channel_task = str(uuid.uuid4())
    channel = Channel.open(WS, ChannelName("task", channel_task), channel_task, "session-1")
    question_sent = channel.send("session-1", "question", {"q": "which?"}, {})
    channel.send("session-2", "answer", "that one", {}, reply_to=question_sent.message_id)
    store.save([workspace, *asked, channel])
    # A GitHub user signed in twice, and an installation of the App linked to the workspace.
    account = GitHubAccount.link(WS, 583231, "octocat")
    store.save([account])
    account.sign_in("octocat")
    linked = GithubInstallationLinked(
        installation_id=40_000_001,
        app_id=1,
        account="acme",
        account_type="Organization",
        repository_selection="all",
        linked_by="github:octocat",
    )
    store.save([account, GitHubInstallation.link(WS, linked)])
    # Container workers: one machine still at work, one destroyed (only the first is listed).
    machines = [WorkerMachine.start(WS, machine_started(f"m-{i}")) for i in range(2)]
    machines[1].destroy("run_ended")
    store.save(machines)
    return live_the_lifecycle(store)


def machine_started(machine_id: str) -> WorkerMachineStarted:
    return WorkerMachineStarted(
        task_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        subtask_id="s1",
        dispatch_seq=1,
        app="acme-workers",
        region="ams",
        machine_id=machine_id,
        machine_name=f"run-{machine_id}",
        session_id=str(uuid.uuid4()),
        callback_token_hash="ab" * 32,
        claim_by=10**13,
    )


def dump(conn: psycopg.Connection) -> dict[str, list[str]]:
    """Every read-model row as PostgreSQL prints it, in a stable order."""
    return {table: [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t ORDER BY 1")] for table in schema.TABLES}


def served(conn: psycopg.Connection, task: Task) -> TaskState:
    """What GET /tasks/{id} answers for the task: its rm_tasks state as a TaskState."""
    row = conn.execute(
        f"SELECT {schema.TASK_STATE} FROM rm_tasks WHERE task_id = %s AND workspace_id = %s",
        (task.id, task.workspace_id),
    ).fetchone()
    assert row is not None, f"task {task.id} is not in rm_tasks"
    return msgspec.convert(row[0], TaskState)


def task_times(store: EventStore, task: Task) -> tuple[int, int]:
    """(created, updated): the submission, and the latest event of the task or charged to it."""
    times = [
        e.occurred_at
        for e in store.read(0)
        if e.aggregate_id == str(task.id) or (e.type == "ledger.charged" and e.payload["task_id"] == str(task.id))
    ]
    return times[0], max(times)


def test_catch_up_serves_the_task_as_get_tasks_would(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    head = projector.catch_up(store, conn)

    assert head == store.head()
    done, failed = scenario.done, scenario.failed
    codegen, test = done.subtasks
    created, updated = task_times(store, done)
    assert served(conn, done) == TaskState(
        id=str(done.id),
        status=TaskStatus.COMPLETED,
        request=msgspec.convert(request("Add input validation", "codegen"), OriginalRequest),
        subtasks=msgspec.convert(msgspec.to_builtins(done.subtasks), list[Subtask]),
        results={
            codegen.id: AgentResult(
                subtask_id=codegen.id,
                agent_type=AgentType.CODEGEN,
                success=True,
                cost=CODEGEN_CHARGE.breakdown(),
                duration_ms=1500,
                output=msgspec.convert(msgspec.to_builtins(CODEGEN_OUTPUT), AgentOutput),
            ),
            test.id: AgentResult(
                subtask_id=test.id,
                agent_type=AgentType.TEST,
                success=True,
                cost=TEST_CHARGE.breakdown(),
                duration_ms=900,
                output=msgspec.convert(msgspec.to_builtins(TEST_OUTPUT), AgentOutput),
            ),
        },
        cost=CostBreakdown(
            input_tokens=1350 + 800,
            output_tokens=300 + 200,
            total_tokens=1650 + 1000,
            estimated_cost_usd=0.0579,
            cpu_time_ms=2400,
            subrequests=2,
        ),
        created_at=created,
        updated_at=updated,
        pr_url=PR_URL,
    )

    failed_state = served(conn, failed)
    subtask_id = failed.subtasks[0].id
    assert failed_state.status == TaskStatus.FAILED
    assert failed_state.error == f"subtask {subtask_id} failed (not retryable): provider exploded"
    assert failed_state.results == {
        subtask_id: AgentResult(
            subtask_id=subtask_id,
            agent_type=AgentType.REVIEW,
            success=False,
            error="provider exploded",
            cost=FAILED_CHARGE.breakdown(),
            duration_ms=0,
        )
    }
    assert failed_state.cost == FAILED_CHARGE.breakdown()
    assert (failed_state.created_at, failed_state.updated_at) == task_times(store, failed)

    rows = conn.execute("SELECT task_id, workspace_id, status, created_at, updated_at FROM rm_tasks").fetchall()
    assert sorted(rows, key=str) == sorted(
        [
            (done.id, WS, "completed", created, updated),
            (failed.id, OTHER_WS, "failed", *task_times(store, failed)),
        ],
        key=str,
    )


def test_feed_charges_and_position(store: EventStore, conn: psycopg.Connection, scenario: Scenario) -> None:
    head = projector.catch_up(store, conn)

    log = store.read(0)
    feed = conn.execute(
        "SELECT seq, workspace_id, type, aggregate_id, occurred_at, payload FROM rm_feed ORDER BY seq"
    ).fetchall()
    # As served: without what stays private to the store (a key's hash).
    assert feed == [
        (e.seq, e.workspace_id, e.type, e.aggregate_id, e.occurred_at, public_payload(e.type, e.payload)) for e in log
    ]
    assert {e.type for e in log} >= {
        "task.submitted",
        "task.subtask_dispatched",
        "task.started",
        "run.started",
        "run.succeeded",
        "run.failed",
        "ledger.opened",
        "ledger.charged",
        "task.subtask_succeeded",
        "task.subtask_failed",
        "task.failed",
        "task.review_requested",
        "gate.opened",
        "gate.decided",
        "task.approved",
        "pull_request.opened",
        "task.completed",
        "github_account.linked",
        "github_account.signed_in",
        "github_installation.linked",
    }

    charges = [e for e in log if e.type == "ledger.charged"]
    rows = conn.execute(
        "SELECT run_id::text, seq, workspace_id, task_id::text, subtask_id, occurred_at, model, input_tokens, "
        "output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, cpu_time_ms, subrequests, priced "
        "FROM rm_charges ORDER BY seq"
    ).fetchall()
    assert [r[:6] for r in rows] == [
        (e.payload["run_id"], e.seq, e.workspace_id, e.payload["task_id"], e.payload["subtask_id"], e.occurred_at)
        for e in charges
    ]
    assert {r[0] for r in rows} == {str(run.id) for run in scenario.runs}
    priced = (CODEGEN_CHARGE, TEST_CHARGE, FAILED_CHARGE)
    expected = {str(run.id): c for run, c in zip(scenario.runs, priced, strict=True)}
    for r in rows:
        c = expected[r[0]]
        assert r[6:] == (
            MODEL,
            c.input_tokens,
            c.output_tokens,
            c.cache_read_tokens,
            c.cache_write_tokens,
            c.cost_usd,
            c.cpu_time_ms,
            c.subrequests,
            True,
        )

    assert conn.execute("SELECT name, position FROM rm_position").fetchall() == [(schema.PROJECTOR, head)]
    assert projector.position(conn) == head == log[-1].seq


def test_catch_up_again_changes_nothing(store: EventStore, conn: psycopg.Connection, scenario: Scenario) -> None:
    head = projector.catch_up(store, conn)
    before = dump(conn)

    assert projector.catch_up(store, conn) == head
    assert dump(conn) == before


def test_catch_up_follows_new_events(store: EventStore, conn: psycopg.Connection, scenario: Scenario) -> None:
    projector.catch_up(store, conn)
    failed = store.load_many([scenario.failed.id])[scenario.failed.id]
    revision = Task.submit(uuid.uuid4(), OTHER_WS, failed.request, failed.subtasks, revision_of=str(failed.id))
    head = store.save([revision])

    assert projector.catch_up(store, conn) == head
    state = served(conn, revision)
    assert state.status == TaskStatus.PENDING
    assert state.revision_of == str(failed.id)
    assert conn.execute("SELECT count(*) FROM rm_feed").fetchone() == (len(store.read(0)),)


def test_a_task_row_written_before_its_request_had_a_column_is_served_whole_as_it_goes_on(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    """Rows projected before `rm_tasks.request` existed keep the request in their state (and
    the column NULL): served as they were, and as a fresh projection serves them, after the
    rest of their events are projected onto them."""
    log = store.read(0)
    submissions = [i for i, e in enumerate(log) if e.type == "task.submitted"]
    early = log[: submissions[-1] + 1]  # every task submitted, none of them finished
    projector.project(conn, early, expected=0)
    conn.execute("UPDATE rm_tasks SET state = state || jsonb_build_object('request', request), request = NULL")
    projector.catch_up(store, conn)
    as_upgraded = {t.id: served(conn, t) for t in (scenario.done, scenario.failed)}
    assert conn.execute("SELECT count(*) FROM rm_tasks WHERE request IS NULL").fetchone() == (2,)

    schema.drop(conn)
    schema.create(conn)
    projector.catch_up(store, conn)

    assert {t.id: served(conn, t) for t in (scenario.done, scenario.failed)} == as_upgraded
    assert conn.execute("SELECT count(*) FROM rm_tasks WHERE request IS NULL").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM rm_tasks WHERE state ? 'request'").fetchone() == (0,)


@pytest.mark.parametrize("batch", [projector.BATCH, 1, 7])
def test_drop_create_and_catch_up_rebuilds_identical_tables(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = projector.catch_up(store, conn)
    original = dump(conn)
    # Every table has rows to rebuild, but for the purged tasks (a purge is the test's below),
    # the queue, which holds runs nobody claimed (tests/integration/test_lease_store.py has one),
    # and orchestration runs (tests/e2e/test_rebuild.py rebuilds one).
    empty_here = ("rm_purged_tasks", "rm_run_queue", "rm_orchestration_runs")
    assert all(rows for table, rows in original.items() if table not in empty_here)

    monkeypatch.setattr(projector, "BATCH", batch)  # batch boundaries must not show in the result
    schema.drop(conn)
    schema.create(conn)
    assert dump(conn) == {table: [] for table in schema.TABLES}
    assert projector.catch_up(store, conn) == head

    assert dump(conn) == original


def test_charges_kept_from_before_estimates_existed_read_as_rebuilt_ones(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)
    rebuilt = dump(conn)
    # The table as an older release made it: no `estimated` column.
    conn.execute("ALTER TABLE rm_charges DROP COLUMN estimated")

    schema.create(conn)  # as every gateway and stream service does when it starts

    assert dump(conn) == rebuilt, "the column comes back last, false for every charge it holds"


def test_a_projector_that_lost_the_race_rolls_back_its_batch(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    # Two projectors (one that missed losing its leadership) both start from position 0.
    events = store.read(0, 10_000)
    with psycopg.connect(conn.info.dsn, autocommit=True) as other:
        with other.transaction():
            projector.project(other, events, expected=0)
    before = dump(conn)

    with pytest.raises(projector.StaleProjector), conn.transaction():
        projector.project(conn, events, expected=0)

    assert dump(conn) == before


def test_tool_calls_read_back_as_the_entries_their_events_make(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)

    # The log's stream builds an entry from a projected row or, past the projector, from the
    # event itself: both must give the same entry.
    events = [e for e in store.read(0) if e.type == toolcalls.TOOL_CALLED]
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM rm_tool_calls ORDER BY seq").fetchall()
    entries = [toolcalls.entry(r) for r in rows]
    assert entries == [toolcalls.entry(toolcalls.row(typed(e))) for e in events]
    run = scenario.runs[0]
    assert [(t.tool, t.status, t.target, t.session_id, t.agent_name, t.task_id, t.workspace_id) for t in entries] == [
        ("read_file", "error", "src/missing.py", str(run.id), "codegen", str(scenario.done.id), WS),
        ("write_file", "ok", "src/register.py", str(run.id), "codegen", str(scenario.done.id), WS),
        ("finish", "ok", None, str(run.id), "codegen", str(scenario.done.id), WS),
    ]
    assert [t.entry_id for t in entries] == [f"entry_{e.seq}" for e in events]
    assert all(t.corrections == [] and t.container_id is None for t in entries)


def test_the_task_log_holds_the_lines_the_events_make_in_log_order(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)

    # The WebSocket sends these rows first, then lines it derives from the events past them:
    # both must be the same lines.
    done = str(scenario.done.id)
    rows = conn.execute("SELECT seq, entry FROM rm_task_log WHERE task_id = %s ORDER BY seq, ordinal", (done,))
    projected = [(seq, msgspec.convert(entry, LogEntry)) for seq, entry in rows]
    events = [e for e in store.read(0) if task_of(e) == done]
    assert projected == [(e.seq, entry) for e in events for entry in task_log.log_entries(typed(e))]
    messages = [entry.message for _, entry in projected]
    assert messages[0] == f"[codegen] attempt 1 started with anthropic {MODEL}"
    assert "[codegen] Read src/missing.py: not found" in messages
    assert messages[-1] == f"[executor] pull request opened: {PR_URL}"
    assert any(m.startswith("[test] finished in 900 ms") for m in messages)


def test_a_purge_clears_the_workspaces_tasks_but_not_one_submitted_while_it_was_recorded(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    stopped = submitted(uuid.uuid4(), WS, "Stopped by the purge", "codegen")
    concurrent = submitted(uuid.uuid4(), WS, "Submitted during the purge", "codegen")
    store.save([stopped, concurrent])
    # A run going on in each: a purge stops tasks, not runs.
    runs = [Run.start(WS, str(t.id), t.subtasks[0].id, "codegen", 1, "anthropic", MODEL) for t in (stopped, concurrent)]
    for run in runs:
        run.record_model_call(1, True, 300, usage(FAILED_CHARGE), "tool_use", 1, None)
    store.save(runs)
    workspace = store.load_many([workspace_aggregate_id(WS)])[workspace_aggregate_id(WS)]
    workspace.purge(["todos"], [str(stopped.id)], [])
    store.save([workspace])

    projector.catch_up(store, conn)

    kept = {r[0] for r in conn.execute("SELECT task_id::text FROM rm_tasks WHERE workspace_id = %s", (WS,))}
    assert kept == {str(concurrent.id)}, "the completed and the stopped task go; the one it did not know stays"
    assert conn.execute("SELECT count(*) FROM rm_feed WHERE workspace_id = %s", (WS,)).fetchone() == (1,)
    # What the kept task's run has used still counts against the workspace's budget.
    using = conn.execute("SELECT task_id::text FROM rm_run_usage WHERE workspace_id = %s", (WS,)).fetchall()
    assert using == [(str(concurrent.id),)]
    # The logs go with their tasks: the kept task's run start and model call stay on its live log.
    logged = conn.execute("SELECT task_id, seq FROM rm_task_log WHERE workspace_id = %s ORDER BY seq", (WS,)).fetchall()
    assert {task_id for task_id, _ in logged} == {str(concurrent.id)} and len(logged) == 2


def test_runs_not_charged_yet_hold_what_their_saved_calls_used(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)

    rows = conn.execute(
        "SELECT run_id, workspace_id, task_id, model, input_tokens, output_tokens, cache_read_tokens, "
        "cache_write_tokens FROM rm_run_usage"
    ).fetchall()
    # run1 made a model call too, but the ledger has charged it: rm_charges holds it now.
    going = scenario.going
    assert rows == [(going.id, OTHER_WS, scenario.failed.id, MODEL, 2 * FAILED_CHARGE.input_tokens, 0, 0, 0)]


def test_a_budget_counts_the_calls_of_other_runs_not_charged_yet(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    workspace = Workspace.create(OTHER_WS, "the other workspace")
    workspace.update_config({"budgetUsd": 1.0, "taskBudgetUsd": 0.5}, {"budgetUsd": 1.0, "taskBudgetUsd": 0.5})
    store.save([workspace])
    projector.catch_up(store, conn)
    prices = PriceTable.from_env()
    going = scenario.going
    charged = FAILED_CHARGE.cost_usd  # run3, charged by the ledger
    used = prices.price(MODEL, {"input_tokens": 2 * FAILED_CHARGE.input_tokens}).usd
    assert used > 0

    # Another run of the same task sees the going run's calls on both caps...
    beside = load_budget(store, prices, OTHER_WS, str(scenario.failed.id), str(uuid.uuid4()))
    assert beside.caps == [
        ("workspace", 1.0, pytest.approx(charged + used)),
        ("task", 0.5, pytest.approx(charged + used)),
    ]
    # ...a run of another task in the workspace, on the workspace's cap only...
    elsewhere = load_budget(store, prices, OTHER_WS, str(uuid.uuid4()), str(uuid.uuid4()))
    assert elsewhere.caps == [("workspace", 1.0, pytest.approx(charged + used)), ("task", 0.5, 0.0)]
    # ...and the going run itself counts its own calls from memory, not twice.
    itself = load_budget(store, prices, OTHER_WS, str(scenario.failed.id), str(going.id))
    assert itself.caps == [("workspace", 1.0, pytest.approx(charged)), ("task", 0.5, pytest.approx(charged))]

    # Once the ledger charges the run, its usage is counted once, as a charge.
    going.fail("stopped", going.usage, 600, 2)
    ledger = store.load_many([ledger_id(str(scenario.failed.id))])[ledger_id(str(scenario.failed.id))]
    charge(ledger, going, Charge(2 * FAILED_CHARGE.input_tokens, 0, 0, 0, used, 600))
    store.save([going, ledger])
    projector.catch_up(store, conn)
    after = load_budget(store, prices, OTHER_WS, str(scenario.failed.id), str(uuid.uuid4()))
    assert after.caps == [
        ("workspace", 1.0, pytest.approx(charged + used)),
        ("task", 0.5, pytest.approx(charged + used)),
    ]
    assert conn.execute("SELECT count(*) FROM rm_run_usage").fetchone() == (0,)


def test_a_runs_first_budget_read_waits_for_the_read_models_to_hold_its_dispatch(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    """A cap raised, then the paused subtask dispatched again: the run's budget read must see the
    raised cap, though the projector had not reached the raise when the dispatch arrived."""
    workspace = Workspace.create(OTHER_WS, "the other workspace")
    workspace.update_config({"budgetUsd": 0.001}, {"budgetUsd": 0.001})
    store.save([workspace])
    projector.catch_up(store, conn)
    workspace = store.load_many([workspace.id])[workspace.id]
    workspace.update_config({"budgetUsd": 5.0}, {"budgetUsd": 5.0})
    raised = store.save([workspace])  # the dispatch it causes comes later in the log
    prices = PriceTable.from_env()
    task, run = str(scenario.failed.id), str(uuid.uuid4())
    assert load_budget(store, prices, OTHER_WS, task, run).caps[0][1] == 0.001, "read at once: the old cap"

    with psycopg.connect(conn.info.dsn, autocommit=True) as late:
        projecting = threading.Timer(0.2, projector.catch_up, (store, late))
        projecting.start()
        budget = load_budget(store, prices, OTHER_WS, task, run, caused_at=raised)
        projecting.join()

    assert budget.caps[0][:2] == ("workspace", 5.0)


def test_a_projector_carrying_a_position_another_moved_stops_and_changes_nothing(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    # The stream service's projector keeps its position between wake-ups instead of reading
    # it each time: another projector's writes meanwhile must stop it, not be written over.
    carried = projector.catch_up(store, conn)
    failed = store.load_many([scenario.failed.id])[scenario.failed.id]
    store.save([Task.submit(uuid.uuid4(), OTHER_WS, failed.request, failed.subtasks, revision_of=str(failed.id))])
    with psycopg.connect(conn.info.dsn, autocommit=True) as other:
        head = projector.catch_up(store, other)
    store.save([Task.submit(uuid.uuid4(), OTHER_WS, failed.request, failed.subtasks, revision_of=str(failed.id))])
    before = dump(conn)

    with pytest.raises(projector.StaleProjector):
        projector.catch_up(store, conn, carried)

    assert dump(conn) == before
    assert projector.position(conn) == head


@pytest.mark.parametrize("batch", [projector.BATCH, 1, 7])
def test_rebuilding_across_a_pause_a_budget_stop_and_a_purge_gives_identical_tables(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario, batch: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run stopped by a budget cap after one call: charged, and its task paused, then resumed.
    capped = submitted(uuid.uuid4(), WS, "Capped work", "codegen")
    for subtask in capped.ready_subtasks():
        capped.dispatch(subtask)
    store.save([capped])
    stopped = Run.start(WS, str(capped.id), capped.subtasks[0].id, "codegen", 1, "anthropic", MODEL)
    stopped.record_model_call(1, True, 300, usage(FAILED_CHARGE), "tool_use", 1, None)
    cap = BudgetCap(cap="workspace", limit_usd=5.0, spent_usd=4.99, estimate_usd=0.02)
    stopped.stop_for_budget(cap, "pause", usage(FAILED_CHARGE), 300, 1, None)
    store.save([stopped])
    capped.start()
    capped.pause(stopped.subtask_id, str(stopped.id), 1, cap, None)
    ledger = Ledger.open(WS, str(capped.id))
    charge(ledger, stopped, FAILED_CHARGE)
    store.save([capped, ledger])
    capped.resume()
    store.save([capped])
    # A purge stops the capped task; then its run, going on (an executor that did not hear of the
    # purge), still calls a tool, succeeds and is charged.
    resumed = Run.start(WS, str(capped.id), capped.subtasks[0].id, "codegen", 2, "anthropic", MODEL)
    resumed.record_model_call(1, True, 300, usage(FAILED_CHARGE), "tool_use", 1, None)
    store.save([resumed])
    workspace = store.load_many([workspace_aggregate_id(WS)])[workspace_aggregate_id(WS)]
    workspace.purge([str(scenario.done.id)], [str(capped.id)], ["que_1"])
    store.save([workspace])
    resumed.record_tool_call("toolu_late", "finish", True, "Finished: late", None, 0, None)
    resumed.succeed(CODEGEN_OUTPUT, usage(FAILED_CHARGE), 600, 2)
    store.save([resumed])
    charge(ledger, resumed, FAILED_CHARGE)
    store.save([ledger])
    head = projector.catch_up(store, conn)
    live = dump(conn)
    logged = {e.type for e in store.read(0, 100_000)}
    assert {"run.budget_stopped", "task.paused", "task.resumed", "workspace.purged"} <= logged
    # The ledger and the log keep what came after the purge; no read model shows any of it.
    assert not any("toolu_late" in row for row in live["rm_tool_calls"])
    about_capped = [row for t in ("rm_feed", "rm_run_usage", "rm_charges") for row in live[t] if str(capped.id) in row]
    assert [row for row in about_capped if "workspace.purged" not in row] == [], "only the purge names it"
    assert len(live["rm_purged_tasks"]) == 2, "the completed task and the stopped one"

    monkeypatch.setattr(projector, "BATCH", batch)  # batch boundaries, purges inside them, must not show
    schema.drop(conn)
    schema.create(conn)
    assert projector.catch_up(store, conn) == head

    assert dump(conn) == live


def test_agent_sessions_are_rows_without_their_tokens_hash(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)

    rows = conn.execute(
        "SELECT parent_session_id IS NULL, state, stop_reason, last_activity, details ? 'token_hash', "
        "details->>'spawn_role' FROM rm_agent_sessions WHERE workspace_id = %s ORDER BY details->>'spawn_depth'",
        (WS,),
    ).fetchall()

    assert rows == [
        (True, "stopped", "stopped_by_user", "stopped", False, None),
        (False, "stopped", "parent_stopped", "stopped", False, "helper"),
    ]


def test_a_workspaces_credentials_are_rows_of_their_name_and_last_four_characters_only(
    store: EventStore, conn: psycopg.Connection, scenario: Scenario
) -> None:
    projector.catch_up(store, conn)

    rows = conn.execute("SELECT * FROM rm_workspace_secrets").fetchall()
    (set_at,) = [e.occurred_at for e in store.read(0) if e.type == "workspace.secret_set"][1:2]
    assert rows == [(WS, "anthropic_api_key", "2222", set_at)]
    feed = conn.execute(
        "SELECT type, payload FROM rm_feed WHERE type LIKE 'workspace.secret_%%' ORDER BY seq"
    ).fetchall()
    assert feed == [
        ("workspace.secret_set", {"name": "anthropic_api_key", "last4": "1111"}),
        ("workspace.secret_set", {"name": "anthropic_api_key", "last4": "2222"}),
        ("workspace.secret_set", {"name": "github_token", "last4": "3333"}),
        ("workspace.secret_cleared", {"name": "github_token"}),
    ]
    every_row = str(dump(conn))
    assert SEALED not in every_row and SEALED_AGAIN not in every_row
