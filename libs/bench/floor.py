"""What the event store and the bus cost per RW-1 task before any service does anything.

RW-1's task (DESIGN.md section 6) makes about 10 appends holding 25 events, and the relay
publishes each event to the `EVENTS` stream, fsynced (invariant 9). This replays only that
traffic on the product's own embedded servers and store: the same `EventStore.save` (one
PL/pgSQL call per append) from worker threads, and the same publishes with `Nats-Msg-Id`,
pipelined `batch` at a time as the relay does. No consumer, no read model, no read, and not the
task's 11 live-log entries (the invariant does not ask them to be fsynced): the CPU it reports
is a floor under RW-1's CPU per task for PostgreSQL and NATS. A benchmark, not a test: it
passes no judgement.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import nats
import psycopg
from eventsourcing.domain import Aggregate, event

from contracts.subjects import EVENTS_STREAM
from libs.bench.rw1 import cpu_seconds, report
from libs.bus.jetstream import ensure_events_stream
from libs.devstack.nats import EmbeddedNats
from libs.devstack.postgres import EmbeddedPostgres
from libs.devstack.processes import free_port
from libs.eventstore.store import EVENTS_TABLE, EventStore

# The size of an RW-1 event as the relay publishes it (its envelope and a short payload).
PAYLOAD = b'{"seq":1,"type":"run.succeeded","workspace_id":"default","payload":{"note":"' + b"x" * 300 + b'"}}'


class Measured(NamedTuple):
    ms_per_task: float  # the server's CPU (user + system) per task, warm-up excluded
    stored: int  # what the server holds at the end (events, or stream messages), warm-up included
    appends: int | None = None  # the transactions that wrote the events (PostgreSQL), warm-up included


class Probe(Aggregate):
    """Stands for a task's aggregates: each append saves its steps since the last one."""

    @event("Opened")
    def __init__(self) -> None:
        self.steps = 0

    @event("Stepped")
    def step(self) -> None:
        self.steps += 1


def postgres_floor(data_dir: Path, tasks: int, appends: int, events: int, workers: int) -> Measured:
    """`events` per task over `appends` appends (the first opens the probe), spread evenly."""
    server = EmbeddedPostgres(data_dir / "postgres")
    url = server.start()
    try:
        store = EventStore(url, pool_size=workers)
        pid = server.pid
        # Events each append holds, as even as they go (the first counts the probe's opening).
        sizes = [events // appends + (i < events % appends) for i in range(appends)]

        def one_task(_: int) -> None:
            probe, pending = Probe(), 1
            for size in sizes:
                for _ in range(size - pending):
                    probe.step()
                store.save([probe])
                pending = 0

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one_task, range(max(tasks // 10, 1))))  # warm-up
            before = cpu_seconds(pid, children=True)
            list(pool.map(one_task, range(tasks)))
            spent = cpu_seconds(pid, children=True) - before
        stored = store.head()
        store.close()
        with psycopg.connect(url) as conn:
            # Each row's xmin is the transaction that inserted it: one per append.
            row = conn.execute(f"SELECT count(DISTINCT xmin::text) FROM {EVENTS_TABLE}").fetchone()
        return Measured(spent * 1000 / tasks, stored, int(row[0]) if row else 0)
    finally:
        server.stop()


async def nats_floor(data_dir: Path, tasks: int, messages: int, batch: int) -> Measured:
    server = EmbeddedNats(data_dir / "nats", port=free_port(), monitor_port=free_port())
    url = server.start()
    try:
        client = await nats.connect(url)
        js = client.jetstream()
        await ensure_events_stream(js)
        sent = 0

        async def publish(count: int) -> None:
            nonlocal sent
            acks = []
            for _ in range(count):
                sent += 1
                acks.append(js.publish("events.default.probe.stepped", PAYLOAD, headers={"Nats-Msg-Id": str(sent)}))
            await asyncio.gather(*acks)

        await publish(batch * 10)  # warm-up
        pid = server.pid
        before = cpu_seconds(pid)
        left = tasks * messages
        while left > 0:
            await publish(min(batch, left))
            left -= batch
        spent = cpu_seconds(pid) - before
        stored = (await js.stream_info(EVENTS_STREAM)).state.messages
        await client.close()
        return Measured(spent * 1000 / tasks, stored)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--appends", type=int, default=10, help="appends per task (RW-1: about 10)")
    parser.add_argument("--events", type=int, default=25, help="events per task (RW-1: 25), at least one per append")
    parser.add_argument("--messages", type=int, default=25, help="fsynced publishes per task (RW-1: its 25 events)")
    parser.add_argument("--workers", type=int, default=6, help="threads appending at once")
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256], help="publishes in flight at once"
    )
    args = parser.parse_args()
    if not 1 <= args.appends <= args.events:
        parser.error("--appends must be at least 1 and at most --events")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="floor-") as folder:
        result: dict[str, object] = {
            "tasks": args.tasks,
            "appends_per_task": args.appends,
            "events_per_task": args.events,
        }
        appended = postgres_floor(Path(folder), args.tasks, args.appends, args.events, args.workers)
        result["postgres_cpu_ms_per_task"] = round(appended.ms_per_task, 2)
        result["publishes_per_task"] = args.messages
        for batch in args.batches:
            published = asyncio.run(nats_floor(Path(folder) / str(batch), args.tasks, args.messages, batch))
            result[f"nats_cpu_ms_per_task_batch_{batch}"] = round(published.ms_per_task, 2)
        result["seconds"] = round(time.monotonic() - started, 1)
    print(report(result, "Floor: RW-1's appends and fsynced publishes alone, no service code"))


if __name__ == "__main__":
    main()
