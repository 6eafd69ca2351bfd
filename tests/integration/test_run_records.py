"""A Run's call records on a real PostgreSQL event store, with the executor's real handlers, the
real `Providers` (official SDKs) and the local model server.

A model call is paid for the moment it returns, so its `run.model_called` record (with the tool
calls recorded before it) must reach the event store while the run goes on; and it may be paid
for without ever returning, so its start is on record before it is made. An executor that stops
mid-run then leaves every paid call on record (the one in flight as an estimate), and the
redelivered dispatch fails the run as interrupted with that usage, which is what the cost ledger
charges and the task's cost shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Any

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import IntegrityError
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from psycopg_pool import AsyncConnectionPool

from contracts.commands import CommandReply, SubmitTasksCommand
from contracts.events import EventEnvelope
from contracts.payloads.shapes import RunOutput, SubtaskResult
from contracts.subjects import ASK_QUESTION
from contracts.tasks import CostsReport, TaskEnvelope, TaskState
from libs.config import Settings
from libs.domain.gate import QuestionGate, question_gate_id
from libs.domain.ledger import Ledger, ledger_id
from libs.domain.pull_request import PullRequest
from libs.domain.run import FAILED, LEASE_EXPIRED, STARTED, Run, run_id_for
from libs.domain.task import Task
from libs.eventstore.blobs import digest_of
from libs.eventstore.recorder import ConsumerTracking
from libs.eventstore.store import EventStore
from libs.fly.machines import Machines
from libs.fly.settings import FlySettingsReader
from libs.leases import heartbeats
from libs.llm.providers import Providers
from libs.modelserver.script import Behaviour, RecordedCall, Script, ToolCall, Usage
from libs.pricing import PriceTable
from libs.provider_keys import ProviderKeys
from libs.readmodels import costs, projector, task_reads
from libs.readmodels.task_files import with_contents
from services.cost_ledger import handlers as cost_ledger
from services.executor.deps import Deps
from services.executor.publishing import on_approved
from services.executor.purges import PURGED
from services.executor.questions import Answers
from services.executor.runs import on_dispatched
from services.executor.runslots import RunSlots
from services.executor.souls import Souls
from services.planner import handlers as planner
from services.planner.plans import plan
from services.review.handlers import ask as ask_question
from tests.factories import stored_request
from tests.polling import eventually
from tests.servers import RunningServer

pytestmark = pytest.mark.integration

WORKSPACE = "ws-run-records"
API_KEY = "sk-test-run-records-do-not-log"
# Distinctive numbers (cache tokens too), so the usage found on record can only be this call's.
FIRST_CALL_USAGE = Usage(
    input_tokens=1234, output_tokens=56, cache_read_input_tokens=300, cache_creation_input_tokens=40
)
# The same usage as the executor records it (the SDK's cache names mapped to the product's).
FIRST_CALL_RECORDED = {"input_tokens": 1234, "output_tokens": 56, "cache_read_tokens": 300, "cache_write_tokens": 40}
POLL_TIMEOUT_S = 10.0


@pytest.fixture
def settings(running_server: RunningServer, postgres_url: str, nats_url: str) -> Settings:
    return running_server.settings(
        "executor",
        API_KEY,
        database_url=postgres_url,
        nats_url=nats_url,
        # Long enough that the "hanging" call is still in flight when the executor crashes,
        # and no SDK retry sends a second request behind the test's back.
        llm_timeout_s=60.0,
        llm_max_retries=0,
        # A lease of a second: a crashed executor's run is found unfinished once it has passed.
        lease_ttl_s=1,
    )


LEASE_PASSES_S = 1.3  # the lease of a run whose executor stopped, passed


@pytest.fixture
async def deps(
    settings: Settings,
    store: EventStore,
    read_models: None,  # the executor reads the budget caps from them before every model call
    nc: NatsClient,
    js: JetStreamContext,
) -> AsyncIterator[Deps]:
    """The executor's dependencies, wired as services/executor/main.py wires them."""
    heartbeats.create(store)  # as the executor's start does
    providers = Providers(settings)
    machines = Machines(settings.fly_api_url)  # no task here runs on Fly: never called
    answers = Answers(store, settings.question_check_s)
    await answers.start(js)
    try:
        yield Deps(
            settings,
            store,
            providers,
            RunSlots(settings.max_concurrent_runs),
            None,  # no GITHUB_TOKEN: nothing here opens a pull request
            nc,
            answers,
            PriceTable.from_env(),
            Souls(store),
            ProviderKeys(store, settings.secrets_key),
            FlySettingsReader(store, settings.secrets_key),
            machines,
        )
    finally:
        await answers.stop()
        await providers.close()
        await machines.close()


def dispatched(store: EventStore) -> EventEnvelope:
    """A `task.subtask_dispatched` exactly as the planner emits it: a task submitted with its
    template plan, its first subtask dispatched, saved, and read back from the log."""
    task_id = uuid.uuid4()
    description = "Add input validation"
    request = stored_request(description)
    # A current model: the SDK warns about the spec's default, which is past its end of life.
    request["config"]["model"] = "claude-sonnet-4-6"
    task = Task.submit(task_id, WORKSPACE, request, plan(str(task_id), "codegen", description))
    task.dispatch(task.ready_subtasks()[0])
    store.save([task])
    [event] = [e for e in store.read(0) if e.aggregate_id == str(task_id) and e.type == "task.subtask_dispatched"]
    return event


def run_id_of(event: EventEnvelope) -> str:
    return str(run_id_for(event.aggregate_id, event.payload["subtask_id"], event.payload["attempt"]))


async def run_log(store: EventStore, run_id: str) -> list[EventEnvelope]:
    """The run's events in the store's log, in log order."""
    return [e for e in await asyncio.to_thread(store.read, 0) if e.aggregate_id == run_id]


async def until_logged(
    store: EventStore, run_id: str, event_type: str, count: int = 1, running: asyncio.Task[Any] | None = None
) -> list[EventEnvelope]:
    """Polls the log until it holds `count` events of `event_type` for the run; returns the run's
    events then. Fails early if the run ends first: what is awaited must be saved mid-run."""
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        events = await run_log(store, run_id)
        if sum(e.type == event_type for e in events) >= count:
            return events
        if running is not None and running.done():
            pytest.fail(f"the run ended before {count} {event_type} event(s) were on record: {types(events)}")
        if time.monotonic() > deadline:
            pytest.fail(f"no {count} {event_type} event(s) on record after {POLL_TIMEOUT_S} s: {types(events)}")
        await asyncio.sleep(0.05)


async def until_called(script: Script, count: int) -> None:
    """Waits until the model server has received `count` requests (it records each on arrival,
    before any scripted delay)."""
    missing = f"the model server did not receive {count} calls"
    await eventually(lambda: len(script.calls()) >= count, missing, POLL_TIMEOUT_S)


def types(events: list[EventEnvelope]) -> list[str]:
    return [e.type for e in events]


def described(events: list[EventEnvelope]) -> list[tuple[str, Any]]:
    """Each event's type with what tells it apart from its siblings (a turn, a tool call id)."""
    detail = {"run.model_call_started": "turn", "run.model_called": "turn", "run.tool_called": "call_id"}
    return [(e.type, e.payload.get(detail[e.type]) if e.type in detail else None) for e in events]


def request_tokens(call: RecordedCall) -> int:
    """A request's size as the model server received it (its system prompt and its messages as
    compact JSON), at four characters a token: what a call is estimated at before it is made."""
    messages = json.dumps(call.request["messages"], separators=(",", ":"), ensure_ascii=False)
    return (len(call.request.get("system") or "") + len(messages)) // 4


def added(*usages: dict[str, int]) -> dict[str, int]:
    total: dict[str, int] = {}
    for usage in usages:
        for key, tokens in usage.items():
            total[key] = total.get(key, 0) + tokens
    return total


async def test_an_executor_crash_mid_run_leaves_every_paid_call_on_record_and_the_redelivery_charges_them(
    script: Script, deps: Deps, store: EventStore
) -> None:
    event = dispatched(store)
    run_id = run_id_of(event)
    script.push(
        # Model call 1 returns and is paid for; it does not finish the run.
        Behaviour(
            tool_calls=[ToolCall("write_file", {"path": "src/register.py", "content": "x = 1\n"}, id="call_write_1")],
            usage=FIRST_CALL_USAGE,
        ),
        # Model call 2 hangs: the executor stops while waiting for it. The provider is paid for
        # it all the same (it answers after the client has gone).
        Behaviour(delay_ms=30_000),
    )

    executing = asyncio.create_task(on_dispatched(event, deps))
    try:
        # The first call's record (and the tool call it asked for) is saved before the run
        # waits for the second call, not with its end, and so is the second call's start.
        await until_called(script, 2)  # the crash comes during the second, unanswered call
        so_far = await run_log(store, run_id)
        assert not executing.done(), "the run is still going"
        assert types(so_far) == ["run.started", "run.model_called", "run.tool_called", "run.model_call_started"]
        called, started = so_far[1].payload, so_far[3].payload
        assert (called["turn"], called["status"]) == (1, "ok")
        assert called["usage"] == FIRST_CALL_RECORDED
        assert started["turn"] == 2
    finally:
        # The crash: the executing handler stops dead, nothing after this point runs.
        executing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await executing

    # The second call's estimate: the request the server got, at four characters a token, and
    # as many output tokens as the call could answer.
    in_flight = {
        "input_tokens": pytest.approx(request_tokens(script.calls()[1]), rel=0.05),
        "output_tokens": event.payload["config"]["maxTokens"],
    }
    assert started["estimated_usage"] == in_flight

    # The redelivery of the same dispatch, once the lease nobody heartbeats any more has passed
    # (as it has by ACK_WAIT_S): the run is found unfinished and failed as interrupted.
    await asyncio.sleep(LEASE_PASSES_S)
    result = await on_dispatched(event, deps)

    [run] = result
    assert isinstance(run, Run)
    assert str(run.id) == run_id
    assert run.status == FAILED
    assert len(script.calls()) == 2, "the redelivery calls no model"
    # Saved as the executor's consumer saves a handler's result.
    await asyncio.to_thread(store.save, result)
    events = await run_log(store, run_id)
    assert types(events) == [
        "run.started",
        "run.model_called",
        "run.tool_called",
        "run.model_call_started",
        "run.failed",
    ]
    failed = events[-1].payload
    assert failed["retryable"] is True, "self-heal dispatches the next attempt"
    assert "interrupted" in failed["error"]
    # Both calls the server answered are charged: the first as counted, the second at its estimate.
    assert failed["estimated_usage"] == started["estimated_usage"]
    assert failed["usage"] == added(FIRST_CALL_RECORDED, started["estimated_usage"])
    assert failed["subrequests"] == 3, "the model call, its write_file and the call in flight"

    # What the user is billed: the cost ledger charges the interrupted run for both calls, and
    # says that the charge holds an estimate.
    ledgers = cost_ledger.on_events([events[-1]], store, deps.prices)
    await asyncio.to_thread(store.save, ledgers)
    ledger = (await asyncio.to_thread(store.load_many, [ledger_id(event.aggregate_id)]))[ledger_id(event.aggregate_id)]
    assert isinstance(ledger, Ledger)
    assert ledger.charged_runs == [run_id]
    model = event.payload["config"]["model"]
    first, second = deps.prices.price(model, FIRST_CALL_RECORDED), deps.prices.price(model, started["estimated_usage"])
    assert first.known and first.usd > 0 and second.usd > 0
    assert ledger.total_usd == pytest.approx(first.usd + second.usd)
    [charged] = [e for e in await asyncio.to_thread(store.read, 0) if e.type == "ledger.charged"]
    assert charged.payload["estimated"] is True


# The executor's, the planner's and the cost ledger's subscriptions, as their services declare them.
PLANNER_EVENTS = ("run.started", "run.succeeded", "run.failed", "run.budget_stopped")
LEDGER_EVENTS = ("run.succeeded", "run.failed", "run.budget_stopped")


async def deliver(store: EventStore, executor: Deps, after: int, until: str) -> int:
    """The services at work on what the log holds after `after`, one event at a time and in log
    order, each handler's result saved as its consumer saves it, until an event of type `until`
    is on record; returns the position reached."""
    while True:
        events = await asyncio.to_thread(store.read, after)
        if not events:
            pytest.fail(f"the log went quiet before {until}")
        for e in events:
            after = e.seq
            if e.type == until:
                return after
            if e.type == "task.subtask_dispatched":
                result = await on_dispatched(e, executor)
                await asyncio.to_thread(store.save, result, ConsumerTracking("executor", [e.seq]))
            if e.type in PLANNER_EVENTS:
                await asyncio.to_thread(lambda e=e: store.save(planner.on_events([e], store)))
            if e.type in LEDGER_EVENTS:
                await asyncio.to_thread(lambda e=e: store.save(cost_ledger.on_events([e], store, executor.prices)))


async def served(store: EventStore, postgres_url: str, task_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """What `GET /tasks/{id}` and `GET /costs` answer once the projector has caught up: the read
    models' rows, converted and encoded as the gateway's routes do."""
    with psycopg.connect(postgres_url) as conn:
        await asyncio.to_thread(projector.catch_up, store, conn)
    async with AsyncConnectionPool(postgres_url, open=False) as pool:
        state = await task_reads.task_state(pool, WORKSPACE, task_id)
        report = await costs.costs(pool, WORKSPACE, None)
    state = await asyncio.to_thread(with_contents, store.blobs, WORKSPACE, state)
    task = msgspec.json.encode(TaskEnvelope(task=msgspec.convert(state, TaskState)))
    report_body = msgspec.json.encode(msgspec.convert(report, CostsReport))
    return msgspec.json.decode(task)["task"], msgspec.json.decode(report_body)


async def test_a_task_whose_executor_stopped_mid_call_shows_every_answered_call_in_its_cost(
    script: Script, deps: Deps, store: EventStore, postgres_url: str
) -> None:
    description = f"Validate the user {uuid.uuid4().hex[:8]}"
    request = stored_request(description)
    request["config"] |= {"model": "claude-sonnet-4-6", "maxTokens": 1500}
    # The codegen's first call is held: its executor stops while the server works on it, and
    # the server answers it anyway (to a client that is gone). Every other call is answered at
    # once with the server's default: a write, then finish; 1,000 tokens in and 200 out.
    script.push(Behaviour(match=f"Task: {description}\n", delay_ms=1500))
    head = await asyncio.to_thread(store.head)
    reply = planner.submit_tasks(msgspec.json.encode(SubmitTasksCommand(WORKSPACE, [request])), store)
    assert isinstance(reply, CommandReply) and reply.task_ids, reply
    [task_id] = reply.task_ids
    [first] = [e for e in await asyncio.to_thread(store.read, head) if e.type == "task.subtask_dispatched"]

    executing = asyncio.create_task(on_dispatched(first, deps))
    try:
        await until_called(script, 1)
    finally:
        executing.cancel()  # the executor stops dead while its model call is in flight
        with contextlib.suppress(asyncio.CancelledError):
            await executing

    # A restarted executor gets the dispatch again (by then the lease has passed); self-heal
    # takes the task on from there.
    await asyncio.sleep(LEASE_PASSES_S)
    restarted = dataclasses.replace(
        deps, providers=Providers(deps.settings), slots=RunSlots(deps.settings.max_concurrent_runs)
    )
    try:
        last = await deliver(store, restarted, head, until="task.review_requested")
    finally:
        await restarted.providers.close()
    task, report = await served(store, postgres_url, task_id)

    assert task["status"] == "review"
    # Each call the server took it answered in full (the held one to a client that was gone): the
    # provider bills every one of them.
    paid = script.calls()
    assert len(paid) == 3, "the held call, the codegen's second attempt, the test subtask's call"
    # Every paid call is on record: two as counted, the held one as an estimate.
    log = [e for e in await asyncio.to_thread(store.read, head) if e.seq <= last]
    counted = [e for e in log if e.type == "run.model_called"]
    estimated = [e for e in log if e.type == "run.failed" and e.payload.get("estimated_usage")]
    assert len(counted) + len(estimated) == len(paid)
    [interrupted] = estimated
    estimate = interrupted.payload["estimated_usage"]
    assert estimate == {"input_tokens": pytest.approx(request_tokens(paid[0]), rel=0.05), "output_tokens": 1500}

    codegen, test = (task["results"][s["id"]] for s in task["subtasks"])
    assert codegen["success"] is True and codegen["attempts"] == 2
    assert codegen["cost"]["estimated"] is True
    assert codegen["cost"]["inputTokens"] == 1000 + estimate["input_tokens"]
    assert codegen["cost"]["outputTokens"] == 200 + 1500
    assert codegen["cost"]["subrequests"] == 1 + 3, "the call in flight; then a call, its write and its finish"
    assert "estimated" not in test["cost"], "the test subtask's call was counted"
    assert test["cost"]["inputTokens"] == 1000
    model = request["config"]["model"]
    counted_usd = deps.prices.price(model, {"input_tokens": 1000, "output_tokens": 200}).usd
    estimate_usd = deps.prices.price(model, estimate).usd
    assert task["cost"]["estimated"] is True
    assert task["cost"]["estimatedCostUsd"] == pytest.approx(2 * counted_usd + estimate_usd)
    # The workspace's costs say so too, for the task and in aggregate.
    [charged] = [t["cost"] for t in report["tasks"] if t["taskId"] == task_id]
    assert charged["estimated"] is True and report["aggregate"]["estimated"] is True
    assert charged["estimatedCostUsd"] == pytest.approx(task["cost"]["estimatedCostUsd"])


async def test_a_dispatch_redelivered_after_its_run_ended_calls_no_model_and_changes_nothing(
    script: Script, deps: Deps, store: EventStore
) -> None:
    event = dispatched(store)
    script.push(Behaviour(tool_calls=[ToolCall("finish", {"summary": "done"}, id="call_finish")]))
    [run] = await on_dispatched(event, deps)
    await asyncio.to_thread(store.save, [run])  # as the consumer saves it, with its tracking row
    recorded = await run_log(store, run_id_of(event))
    assert recorded[-1].type == "run.succeeded" and len(script.calls()) == 1

    # The same dispatch again (its ack was lost): the run's start conflicts with the record.
    assert await on_dispatched(event, deps) == []
    assert len(script.calls()) == 1, "the redelivery calls no model"
    assert await run_log(store, run_id_of(event)) == recorded


def slow_call_records(store: EventStore, monkeypatch: pytest.MonkeyPatch, delay_s: float) -> None:
    """Makes the store slow to take a Run's call records (the background saves hand it bare
    events; the run's start and end are saved as the Run aggregate), so the run's end can come
    while a background save is still in flight, and must wait for it."""
    save = store.save

    def slowly(aggregates: Iterable[Any], tracking: ConsumerTracking | None = None) -> int:
        items = list(aggregates)
        if not any(isinstance(item, Run) for item in items):
            time.sleep(delay_s)
        return save(items, tracking)

    monkeypatch.setattr(store, "save", slowly)


async def test_a_run_saved_call_by_call_and_at_its_end_logs_each_event_once_in_order(
    script: Script, deps: Deps, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = dispatched(store)
    slow_call_records(store, monkeypatch, delay_s=0.5)
    run_id = run_id_of(event)
    new_register = 'def register(user):\n    """Registers a user."""\n    return user\n'
    new_test = "from register import register\n\n\ndef test_register():\n    assert register(1) == 1\n"
    script.push(
        Behaviour(tool_calls=[ToolCall("read_file", {"path": "src/register.py"}, id="call_read_1")]),
        Behaviour(
            tool_calls=[ToolCall("write_file", {"path": "src/register.py", "content": new_register}, id="call_write_2")]
        ),
        # The last call takes a while, so what was saved before it can be looked at mid-run;
        # its test file makes the run wait for pytest's collection before it ends, with the
        # last turn's records (slow to save) going to the store meanwhile.
        Behaviour(
            tool_calls=[
                ToolCall("write_file", {"path": "tests/test_register.py", "content": new_test}, id="call_test_3"),
                ToolCall("finish", {"summary": "Documented register"}, id="call_finish_3"),
            ],
            delay_ms=3000,
        ),
    )

    executing = asyncio.create_task(on_dispatched(event, deps))
    # Mid-run: everything recorded before the run began waiting for its third call, that call's
    # start included (the first call's is the run's own).
    so_far = await until_logged(store, run_id, "run.model_called", count=2, running=executing)
    assert described(so_far) == [
        ("run.started", None),
        ("run.model_called", 1),
        ("run.tool_called", "call_read_1"),
        ("run.model_call_started", 2),
        ("run.model_called", 2),
        ("run.tool_called", "call_write_2"),
        ("run.model_call_started", 3),
    ]
    result = await executing
    # Saved as the executor's consumer saves a handler's result.
    await asyncio.to_thread(store.save, result)

    [run] = result
    assert isinstance(run, Run) and run.status != STARTED
    events = await run_log(store, run_id)
    assert described(events) == [
        ("run.started", None),
        ("run.model_called", 1),
        ("run.tool_called", "call_read_1"),
        ("run.model_call_started", 2),
        ("run.model_called", 2),
        ("run.tool_called", "call_write_2"),
        ("run.model_call_started", 3),
        ("run.model_called", 3),
        ("run.tool_called", "call_test_3"),
        ("run.tool_called", "call_finish_3"),
        ("run.succeeded", None),
    ]
    # One event per version, no gap, no repeat: the background saves and the final one interleave cleanly.
    assert [e.version for e in events] == list(range(1, len(events) + 1))
    assert events[-1].payload["output"]["summary"] == "Documented register"
    files = {"src/register.py": new_register, "tests/test_register.py": new_test}
    # The event names the changed files by digest; their contents were stored with it.
    named = events[-1].payload["output"]["files"]
    assert named == {path: {"digest": digest_of(text), "size": len(text.encode())} for path, text in files.items()}
    assert store.blobs.files(WORKSPACE, named) == [files]
    assert events[-1].payload["usage"]["input_tokens"] == 3000, "three calls at the server's default 1000"
    # A redelivery of the finished run changes nothing.
    assert await on_dispatched(event, deps) == []
    assert len(await run_log(store, run_id)) == len(events)


def _expired_by_the_sweeper(store: EventStore, run_id: str) -> None:
    """What the lease sweeper does to a run whose executor stalled past its lease."""
    run = store.load(uuid.UUID(run_id))
    run.expire(run.lease_until)
    store.save([run])


async def test_a_run_another_executor_recorded_meanwhile_makes_no_further_paid_call(
    script: Script, deps: Deps, store: EventStore
) -> None:
    # This executor is slow (its second model call hangs for a while, and it stalls past its
    # lease): the sweeper ends the run meanwhile, charging the call in flight at its estimate.
    event = dispatched(store)
    run_id = run_id_of(event)
    write = {"path": "src/register.py", "content": "x = 1\n"}
    script.push(
        Behaviour(tool_calls=[ToolCall("write_file", write, id="call_write_1")], usage=FIRST_CALL_USAGE),
        Behaviour(tool_calls=[ToolCall("write_file", write, id="call_write_2")], delay_ms=1500),
        Behaviour(tool_calls=[ToolCall("finish", {"summary": "done"}, id="call_finish")]),
    )
    executing = asyncio.create_task(on_dispatched(event, deps))
    await until_logged(store, run_id, "run.model_called", running=executing)
    await until_called(script, 2)

    # Another replica's redelivery leaves the run alone: its lease is heartbeated, its executor alive.
    assert await on_dispatched(event, deps) == []
    # The executor stalls past its lease, and the sweeper ends the run meanwhile.
    await asyncio.to_thread(_expired_by_the_sweeper, store, run_id)

    # The slow executor's second call returns, and saving its record conflicts: the run is not
    # its own any more, so it makes no third call, and it saves no outcome of its own.
    with pytest.raises(IntegrityError):
        await asyncio.wait_for(executing, 10)
    assert len(script.calls()) == 2
    events = await run_log(store, run_id)
    assert types(events) == [
        "run.started",
        "run.model_called",
        "run.tool_called",
        "run.model_call_started",
        "run.lease_expired",
    ]
    failed = events[-1].payload
    assert failed["error"] == LEASE_EXPIRED
    # The slow executor's second call was paid: the expiry charges it, at its estimate.
    assert failed["estimated_usage"] == events[-2].payload["estimated_usage"]
    assert failed["subrequests"] == 3


async def test_a_run_another_executor_recorded_meanwhile_asks_nobody(
    script: Script, deps: Deps, store: EventStore, nc: NatsClient
) -> None:
    # As above, but the slow call asks a person: the question is not put to anyone, since the
    # run has ended without it (its retry may ask again).
    event = dispatched(store)
    run_id = run_id_of(event)
    question = {"question": "Which greeting?", "header": "Greeting", "options": [{"label": "Hello"}]}
    script.push(
        Behaviour(
            tool_calls=[ToolCall("write_file", {"path": "a.py", "content": "x = 1\n"}, id="call_write")],
            usage=FIRST_CALL_USAGE,
        ),
        Behaviour(tool_calls=[ToolCall("ask_human", {"questions": [question]}, id="call_ask")], delay_ms=1500),
    )
    asked: list[bytes] = []

    async def review(msg: Msg) -> None:  # the owner of gates, as review answers the command
        asked.append(msg.data)
        await msg.respond(msgspec.json.encode(ask_question(msg.data, store, 3600)))

    responder = await nc.subscribe(ASK_QUESTION, cb=review)
    executing = asyncio.create_task(on_dispatched(event, deps))
    await until_logged(store, run_id, "run.model_called", running=executing)
    await until_called(script, 2)

    await asyncio.to_thread(_expired_by_the_sweeper, store, run_id)

    with pytest.raises(IntegrityError):
        await asyncio.wait_for(executing, 10)
    await responder.unsubscribe()
    assert asked == [] and len(script.calls()) == 2


async def test_a_question_review_recorded_though_its_reply_came_too_late_is_still_waited_for(
    script: Script, deps: Deps, store: EventStore, nc: NatsClient
) -> None:
    event = dispatched(store)
    question = {"question": "Which greeting?", "header": "Greeting", "options": [{"label": "Hello"}]}
    script.push(Behaviour(tool_calls=[ToolCall("ask_human", {"questions": [question]}, id="call_ask")]))

    async def slow_review(msg: Msg) -> None:
        reply = await asyncio.to_thread(ask_question, msg.data, store, 3600)  # recorded at once...
        await asyncio.sleep(1.0)  # ... but its reply comes after the executor stopped waiting
        await msg.respond(msgspec.json.encode(reply))

    responder = await nc.subscribe(ASK_QUESTION, cb=slow_review)
    answers = Answers(store, check_every_s=0.2)
    answers.start_checks()
    impatient = dataclasses.replace(
        deps, settings=msgspec.structs.replace(deps.settings, command_timeout_s=0.3), answers=answers
    )
    try:
        executing = asyncio.create_task(on_dispatched(event, impatient))
        asked = await until_asked(store)
        await asyncio.sleep(0.5)  # the executor's wait for the reply is over by now
        await asyncio.to_thread(answer_question, store, asked, [["Hello"]])
        [run] = await asyncio.wait_for(executing, 10)
    finally:
        await answers.stop()
        await responder.unsubscribe()

    assert run.status == "succeeded"
    [result] = [r for r in tool_results(script.calls()[1]) if r["tool_use_id"] == "call_ask"]
    assert result["content"] == "A human answered:\n- Greeting: Hello"


async def until_asked(store: EventStore) -> str:
    """The id of the first question on record, once there is one."""
    found: list[str] = []

    def asked() -> bool:
        found[:] = [e.payload["question_id"] for e in store.read(0) if e.type == "question_gate.asked"]
        return bool(found)

    await eventually(asked, "no question on record", POLL_TIMEOUT_S)
    return found[0]


def answer_question(store: EventStore, question_id: str, picked: list[list[str]]) -> None:
    """A person answers, and review records it (its message on the bus is not needed)."""
    gate = store.load_many([question_gate_id(question_id)])[question_gate_id(question_id)]
    assert isinstance(gate, QuestionGate)
    gate.answer(picked)
    store.save([gate])


def tool_results(call: Any) -> list[dict[str, Any]]:
    """The Anthropic tool results a recorded model call carries."""
    return [
        block
        for m in call.request["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for block in m["content"]
        if block.get("type") == "tool_result"
    ]


def approval(store: EventStore) -> tuple[Task, EventEnvelope]:
    """A task approved (every subtask succeeded, reviewed), and its `task.approved` from the log."""
    task_id = uuid.uuid4()
    task = Task.submit(task_id, WORKSPACE, stored_request(), plan(str(task_id), "codegen", "Add input validation"))
    while ready := task.ready_subtasks():
        for subtask in ready:
            task.dispatch(subtask)
            task.start()
            output = RunOutput(files={"src/app.py": "x = 1\n"}, summary="done")
            result = SubtaskResult(
                subtask_id=subtask.id, agent_type=subtask.agent_type, success=True, output=output, duration_ms=5
            )
            task.record_success(subtask.id, f"run-{subtask.id}", result)
    task.request_review()
    task.approve(None)
    store.save([task])
    [event] = [e for e in store.read(0) if e.aggregate_id == str(task_id) and e.type == "task.approved"]
    return task, event


async def test_an_approval_handed_back_after_its_task_was_cancelled_publishes_nothing(
    deps: Deps, store: EventStore
) -> None:
    task, approved = approval(store)
    # As the first delivery finds it: the pull request's outcome is recorded (here: no GitHub).
    [pull] = await on_approved(approved, deps)
    assert isinstance(pull, PullRequest)

    task, approved = approval(store)
    task.cancel("the workspace was purged")  # while a rate-limited approval waited
    store.save([task])

    assert await on_approved(approved, deps) == [], "a cancelled task gets no pull request"


# --- a purge stops the purged tasks' runs --------------------------------------------------------


async def test_a_run_whose_task_is_purged_while_it_waits_for_a_person_stops_there_and_is_charged(
    script: Script, deps: Deps, store: EventStore, nc: NatsClient
) -> None:
    event = dispatched(store)
    question = {"question": "Which greeting?", "header": "Greeting", "options": [{"label": "Hello"}]}
    script.push(
        Behaviour(tool_calls=[ToolCall("ask_human", {"questions": [question]}, id="call_ask")], usage=FIRST_CALL_USAGE)
    )

    async def review(msg: Msg) -> None:
        await msg.respond(msgspec.json.encode(await asyncio.to_thread(ask_question, msg.data, store, 3600)))

    responder = await nc.subscribe(ASK_QUESTION, cb=review)
    try:
        executing = asyncio.create_task(on_dispatched(event, deps))
        await until_asked(store)
        await eventually(lambda: deps.slots.room(1) == deps.slots.size, "the run did not park", POLL_TIMEOUT_S)

        deps.purges.stop([event.aggregate_id])
        [run] = await asyncio.wait_for(executing, 10)
    finally:
        await responder.unsubscribe()

    assert len(script.calls()) == 1, "no model call after the purge"
    assert run.status == FAILED
    [failed] = [e.payload for e in run.collect_events() if type(e).__name__ == "Failed"]
    assert (failed.error, failed.retryable) == (PURGED, False)
    assert failed.usage == FIRST_CALL_RECORDED and failed.estimated_usage is None, "what it spent, as counted"
    # Nothing was recorded after the purge but its end: the question's call never came back as a tool call.
    assert "run.tool_called" not in types(await run_log(store, run_id_of(event)))
    assert deps.slots.room(0) == deps.slots.size, "it holds no slot, parked or not"


async def test_a_run_whose_task_is_purged_mid_call_is_charged_that_call_at_its_estimate(
    script: Script, deps: Deps, store: EventStore
) -> None:
    event = dispatched(store)
    script.push(Behaviour(delay_ms=30_000))  # the call is in flight when the purge comes
    executing = asyncio.create_task(on_dispatched(event, deps))
    await until_called(script, 1)

    deps.purges.stop([event.aggregate_id])
    [run] = await asyncio.wait_for(executing, 10)

    [failed] = [e.payload for e in run.collect_events() if type(e).__name__ == "Failed"]
    assert failed.error == PURGED
    estimate = {
        "input_tokens": request_tokens(script.calls()[0]),
        "output_tokens": event.payload["config"]["maxTokens"],
    }
    assert failed.estimated_usage == estimate == failed.usage
    assert failed.subrequests == 1


async def test_a_dispatch_that_comes_after_its_task_was_purged_starts_no_run(
    script: Script, deps: Deps, store: EventStore
) -> None:
    event = dispatched(store)
    deps.purges.stop([event.aggregate_id])

    assert await on_dispatched(event, deps) == []
    assert script.calls() == []
    assert await run_log(store, run_id_of(event)) == []
