"""Leases on a real PostgreSQL (`libs.leases`, the runtime's claims and sweeper, the queue and
lease read models): one claim wins a race, a passed lease is never extended again, the sweeper
expires what passed and nothing else, and the queue rebuilds from the log as it was live."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import pytest

from contracts.commands import ClaimRunCommand, LeaseCommand
from contracts.events import typed
from contracts.payloads.shapes import RunOutput
from libs.domain.agent_session import AgentSession
from libs.domain.run import EXPIRED, FAILED, STARTED, SUCCEEDED, Claim, Run, claim_token_hash
from libs.domain.task import Task
from libs.eventstore.store import EventStore
from libs.leases import heartbeats
from libs.leases.clock import now_ms
from libs.pricing import PriceTable
from libs.readmodels import projector, schema
from services.executor import under_lease
from services.executor.claims import claim_next
from services.executor.sweeper import sweep_once
from services.planner.plans import plan
from tests.factories import stored_request

pytestmark = pytest.mark.integration

WS = "ws-leases"


@pytest.fixture
def conn(postgres_url: str, store: EventStore) -> Iterator[psycopg.Connection]:
    heartbeats.create(store)
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        schema.create(connection)
        yield connection


def external_task(store: EventStore, description: str) -> Task:
    request = stored_request(description, "review")
    request["config"]["agentRuntime"] = "external"
    task_id = uuid.uuid4()
    task = Task.submit(task_id, WS, request, plan(str(task_id), "review", description))
    task.dispatch_ready()
    store.save([task])
    return task


def session(store: EventStore, name: str) -> AgentSession:
    made, _ = AgentSession.create(WS, name, "reviewer", "m", "anthropic", [])
    store.save([made])
    return made


def claim_for(session: AgentSession, ttl_s: int = 30) -> ClaimRunCommand:
    """What the runtime's edge sends the executor for the session's `claim-next`."""
    return ClaimRunCommand(
        workspace_id=WS, session_id=str(session.id), provider="", model="", agent_types=None, lease_ttl_s=ttl_s
    )


def test_sessions_racing_for_one_run_see_exactly_one_claim_win(store: EventStore, conn: psycopg.Connection) -> None:
    external_task(store, "only one")
    projector.catch_up(store, conn)
    racers = [session(store, f"racer-{i}") for i in range(8)]
    won: list[str] = []
    gate = threading.Barrier(len(racers))

    def race(racer: AgentSession) -> None:
        gate.wait()
        claimed = claim_next(store, PriceTable({}), claim_for(racer))
        if claimed is not None:
            won.append(str(racer.id))

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1


def test_a_lease_once_passed_is_never_extended_again(store: EventStore, conn: psycopg.Connection) -> None:
    run_id, token_hash, now = uuid.uuid4(), claim_token_hash("clm_t"), now_ms()
    first = heartbeats.extend(store, run_id, token_hash, now + 1000, 600)
    assert first is not None and first[0] < now + 5000
    assert heartbeats.extend(store, run_id, claim_token_hash("clm_other"), now + 1000, 5000) is None, "not its token"
    assert heartbeats.extend(store, uuid.uuid4(), token_hash, now - 1, 5000) is None, "its claim passed already"
    time.sleep(1.2)  # past the claim's end, and the heartbeat's
    assert heartbeats.extend(store, run_id, token_hash, now + 1000, 60_000) is None, "it passed: for good"
    assert heartbeats.latest(store, [run_id])[run_id] == first


def test_a_heartbeat_and_the_sweeper_never_both_win_a_leases_last_moment(
    store: EventStore, conn: psycopg.Connection
) -> None:
    """The sweeper marks the lease it ends, by the database's clock: a heartbeat that comes after
    (however early its caller read its own clock) is refused; one that came before keeps it."""
    external_task(store, "last moment")
    projector.catch_up(store, conn)
    claimed = claim_next(store, PriceTable({}), claim_for(session(store, "holder"), 1))
    assert claimed is not None
    run = claimed.run
    projector.catch_up(store, conn)
    time.sleep(1.2)
    assert sweep_once(store, now_ms()) == 1
    assert heartbeats.extend(store, run.id, run.claim_token_hash or "", run.lease_until or 0, 60_000) is None
    assert store.load(run.id).status == EXPIRED

    external_task(store, "kept in time")
    projector.catch_up(store, conn)
    kept = claim_next(store, PriceTable({}), claim_for(session(store, "keeper"), 1))
    assert kept is not None
    assert heartbeats.extend(store, kept.run.id, kept.run.claim_token_hash or "", kept.run.lease_until or 0, 60_000)
    projector.catch_up(store, conn)
    time.sleep(1.2)
    assert sweep_once(store, now_ms() + 5_000) == 0, "the heartbeat came first: the lease lives"
    assert store.load(kept.run.id).status == STARTED


def test_the_sweeper_expires_the_passed_leases_and_only_those(store: EventStore, conn: psycopg.Connection) -> None:
    external_task(store, "left behind")
    external_task(store, "kept alive")
    external_task(store, "finished in time")
    projector.catch_up(store, conn)
    holders = [session(store, f"holder-{i}") for i in range(3)]
    left, kept, finished = (claim_next(store, PriceTable({}), claim_for(h, 1)) for h in holders)
    assert left is not None and kept is not None and finished is not None
    assert heartbeats.extend(store, kept.run.id, kept.run.claim_token_hash or "", kept.run.lease_until or 0, 60_000)
    finished.run.succeed(RunOutput(files={}, summary="done"), {}, 1, 0)
    store.save([finished.run])
    projector.catch_up(store, conn)
    time.sleep(1.2)

    assert sweep_once(store, now_ms()) == 1
    runs = store.load_many([left.run.id, kept.run.id, finished.run.id])
    assert [runs[r.run.id].status for r in (left, kept, finished)] == [EXPIRED, STARTED, SUCCEEDED]
    projector.catch_up(store, conn)
    assert sweep_once(store, now_ms()) == 0, "each lease expires once"
    rows = dict(conn.execute("SELECT run_id, status FROM rm_leases").fetchall())
    assert rows[left.run.id] == "expired" and rows[kept.run.id] == "claimed" and rows[finished.run.id] == "completed"
    assert heartbeats.prune(store) == 1, "the ended run's heartbeat row goes; the live one stays"
    assert set(heartbeats.latest(store, [left.run.id, kept.run.id])) == {kept.run.id}


def _command(holder: AgentSession, claimed: Any, verb: str, **fields: Any) -> bytes:
    return msgspec.json.encode(
        LeaseCommand(
            verb=verb,
            workspace_id=WS,
            session_id=str(holder.id),
            run_id=str(claimed.run.id),
            claim_token=claimed.token,
            **fields,
        )
    )


def _held(store: EventStore, conn: psycopg.Connection, ttl_s: int = 30) -> tuple[AgentSession, Any]:
    external_task(store, "held")
    projector.catch_up(store, conn)
    holder = session(store, "holder")
    claimed = claim_next(store, PriceTable({}), claim_for(holder, ttl_s))
    assert claimed is not None
    projector.catch_up(store, conn)
    return holder, claimed


def test_a_complete_sent_in_time_is_kept_while_its_own_checks_outlast_the_lease(
    store: EventStore, conn: psycopg.Connection
) -> None:
    holder, claimed = _held(store, conn, ttl_s=2)
    stop = threading.Event()

    def sweep() -> None:
        while not stop.is_set():
            sweep_once(store, now_ms())
            time.sleep(0.2)

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    slow = "import time\ntime.sleep(3)\n\n\ndef test_x():\n    assert True\n"
    result = {"files": {"tests/test_slow.py": slow}, "summary": "done"}
    try:
        reply = asyncio.run(under_lease.on_command(_command(holder, claimed, "complete", result=result), store, True))
    finally:
        stop.set()
        sweeper.join()
    assert reply.refused is None, reply.refused
    assert store.load(claimed.run.id).status == SUCCEEDED


@pytest.mark.parametrize(
    ("path", "content"),
    [
        ("a.json", "[" * 100_000),
        ("a.toml", "a=" + "[" * 100_000),
        ("a.yaml", "- " * 100_000),
        ("a.py", "x=" + "-" * 200_000 + "1"),
    ],
)
def test_a_file_nested_past_reading_fails_the_checks_not_the_executor(
    store: EventStore, conn: psycopg.Connection, path: str, content: str
) -> None:
    holder, claimed = _held(store, conn)
    result = {"files": {path: content}, "summary": "done"}
    reply = asyncio.run(under_lease.on_command(_command(holder, claimed, "complete", result=result), store, False))
    assert reply.refused is None and reply.error is None
    run = store.load(claimed.run.id)
    assert run.status == FAILED and "nested too deeply" in (run.error or "")


def test_a_complete_sent_again_answers_the_run_as_the_first_left_it(
    store: EventStore, conn: psycopg.Connection
) -> None:
    holder, claimed = _held(store, conn)
    result = {"summary": "done"}
    first = asyncio.run(under_lease.on_command(_command(holder, claimed, "complete", result=result), store, False))
    again = asyncio.run(under_lease.on_command(_command(holder, claimed, "complete", result=result), store, False))
    assert first.refused is None and again.refused is None and again.run_id == first.run_id
    assert [e.type for e in store.read(0, 10_000) if e.aggregate_id == str(claimed.run.id)] == [
        "run.started",
        "run.succeeded",
    ]


def test_a_release_keeps_the_model_and_the_calls_its_holder_reports(
    store: EventStore, conn: psycopg.Connection
) -> None:
    holder, claimed = _held(store, conn)
    usage = {"model": "claude-opus-4-20250514", "input_tokens": 1000, "output_tokens": 100, "calls": 7}
    reply = asyncio.run(under_lease.on_command(_command(holder, claimed, "release", usage=usage), store, False))
    assert reply.refused is None
    (released,) = [typed(e).payload for e in store.read(0, 10_000) if e.type == "run.released"]
    assert (released.model, released.subrequests, released.usage["input_tokens"]) == ("claude-opus-4-20250514", 7, 1000)


def test_the_queue_and_the_leases_rebuild_from_the_log_as_they_were_live(
    store: EventStore, conn: psycopg.Connection
) -> None:
    external_task(store, "claimed")
    projector.catch_up(store, conn)
    assert claim_next(store, PriceTable({}), claim_for(session(store, "taker"))) is not None
    waiting = external_task(store, "nobody took it")
    held = Claim(session_id=None, lease_until=10**13, lease_ttl_s=30, token_hash="c" * 64)
    executor_run = Run.start(WS, str(uuid.uuid4()), "s1", "codegen", 1, "anthropic", "m", claim=held)
    store.save([executor_run])
    head = projector.catch_up(store, conn)
    live = {t: conn.execute(f"SELECT t::text FROM {t} t ORDER BY 1").fetchall() for t in ("rm_run_queue", "rm_leases")}
    assert [r[0] for r in conn.execute("SELECT task_id::text FROM rm_run_queue")] == [str(waiting.id)]
    assert len(live["rm_leases"]) == 2

    schema.drop(conn)
    schema.create(conn)
    assert projector.catch_up(store, conn) == head
    rebuilt = {t: conn.execute(f"SELECT t::text FROM {t} t ORDER BY 1").fetchall() for t in live}
    assert rebuilt == live
