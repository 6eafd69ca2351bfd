"""Leases on a real PostgreSQL (`libs.leases`, the runtime's claims and sweeper, the queue and
lease read models): one claim wins a race, a passed lease is never extended again, the sweeper
expires what passed and nothing else, and the queue rebuilds from the log as it was live."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from contracts.commands import ClaimRunCommand
from contracts.payloads.shapes import RunOutput
from libs.domain.agent_session import AgentSession
from libs.domain.run import EXPIRED, STARTED, SUCCEEDED, Claim, Run, claim_token_hash
from libs.domain.task import Task
from libs.eventstore.store import EventStore
from libs.leases import heartbeats
from libs.leases.clock import now_ms
from libs.pricing import PriceTable
from libs.readmodels import projector, schema
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
    assert heartbeats.extend(store, run_id, token_hash, now + 1000, now + 5000, now)
    assert heartbeats.extend(store, run_id, token_hash, now + 1000, now + 9000, now + 4000)
    assert not heartbeats.extend(store, run_id, token_hash, now + 1000, now + 20000, now + 9001), "it passed"
    assert not heartbeats.extend(store, run_id, claim_token_hash("clm_other"), now + 1000, now + 9000, now)
    assert not heartbeats.extend(store, uuid.uuid4(), token_hash, now - 1, now + 5000, now), "claim already passed"
    assert heartbeats.latest(store, [run_id]) == {run_id: (now + 9000, now + 4000)}


def test_the_sweeper_expires_the_passed_leases_and_only_those(store: EventStore, conn: psycopg.Connection) -> None:
    external_task(store, "left behind")
    external_task(store, "kept alive")
    external_task(store, "finished in time")
    projector.catch_up(store, conn)
    holders = [session(store, f"holder-{i}") for i in range(3)]
    left, kept, finished = (claim_next(store, PriceTable({}), claim_for(h, 1)) for h in holders)
    assert left is not None and kept is not None and finished is not None
    now = now_ms()
    assert heartbeats.extend(
        store, kept.run.id, kept.run.claim_token_hash or "", kept.run.lease_until or 0, now + 60_000, now
    )
    finished.run.succeed(RunOutput(files={}, summary="done"), {}, 1, 0)
    store.save([finished.run])
    projector.catch_up(store, conn)

    assert sweep_once(store, now + 2000) == 1
    runs = store.load_many([left.run.id, kept.run.id, finished.run.id])
    assert [runs[r.run.id].status for r in (left, kept, finished)] == [EXPIRED, STARTED, SUCCEEDED]
    projector.catch_up(store, conn)
    assert sweep_once(store, now + 2000) == 0, "each lease expires once"
    rows = dict(conn.execute("SELECT run_id, status FROM rm_leases").fetchall())
    assert rows[left.run.id] == "expired" and rows[kept.run.id] == "claimed" and rows[finished.run.id] == "completed"


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
