"""What one RW-1 task costs the event store, PostgreSQL, the bus and each process: a census.

Runs RW-1 (`libs.bench.rw1`) on the embedded system with `pg_stat_statements` loaded, and counts,
over the measured tasks only: the events appended (by type, and their bytes), PostgreSQL's
transactions and statements (by statement), the messages NATS took in and handed out, what each
durable consumer was delivered, and each process's wake-ups (context switches: how often it was
scheduled to run). Divided by the tasks, each is what one task costs: the list to justify, line
by line, or cut. A measurement, not a test: it passes no judgement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.utils import resolve_topic

from libs.bench.rw1 import run_workload
from libs.devstack.stack import SERVICES, Ports, Stack
from libs.domain.base import EventTypes
from libs.eventstore.store import EVENTS_TABLE

STATEMENTS_SHOWN = 25
# What each statement is shown as: its first characters, white space folded.
STATEMENT_CHARS = 90


def wakeups(pid: int | None, children: bool = False) -> int:
    """Times the process's threads (and, for PostgreSQL, its backends') were switched in so far."""
    if pid is None:
        return 0
    pids = [pid]
    if children:
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    total = 0
    for p in pids:
        for status in Path(f"/proc/{p}/task").glob("*/status"):
            with contextlib.suppress(OSError):
                for line in status.read_text().splitlines():
                    if "ctxt_switches:" in line:  # voluntary and not
                        total += int(line.split()[-1])
    return total


def wakeups_by_process(stack: Stack) -> dict[str, int]:
    counts = {name: wakeups(stack.services[name].pid) for name in SERVICES}
    counts["postgres"] = wakeups(stack.postgres.pid, children=True)
    counts["nats"] = wakeups(stack.nats.pid)
    return counts


def nats_counts(stack: Stack) -> dict[str, int]:
    """Messages NATS took in and handed out so far, and what each durable consumer was delivered."""

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"{stack.nats.monitor_url}{path}", timeout=10) as response:
            return json.loads(response.read())

    varz = get("/varz")
    counts = {"messages in": varz["in_msgs"], "messages out": varz["out_msgs"]}
    for account in get("/jsz?consumers=true").get("account_details", []):
        for stream in account.get("stream_detail", []):
            for consumer in stream.get("consumer_detail") or []:
                counts[f"delivered to {consumer['name']}"] = consumer["delivered"]["consumer_seq"]
    return counts


def statements(conn: psycopg.Connection) -> Counter[str]:
    rows = conn.execute(
        "SELECT query, calls FROM pg_stat_statements "
        "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchall()
    found: Counter[str] = Counter()
    for query, calls in rows:
        found[" ".join(str(query).split())[:STATEMENT_CHARS]] += int(calls)
    return found


def transactions(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
    ).fetchone()
    return int(row[0]) if row else 0


def events_appended(conn: psycopg.Connection, after: int, through: int) -> dict[str, tuple[int, int]]:
    """Each event type appended in (after, through]: how many, and their bytes as stored."""
    rows = conn.execute(
        f"SELECT topic, count(*), sum(octet_length(state)) FROM {EVENTS_TABLE} "
        "WHERE notification_id > %s AND notification_id <= %s GROUP BY topic",
        (after, through),
    ).fetchall()
    # By wire type (`run.started`): the class name alone (`Started`) is shared by several
    # aggregates' events, which then overwrote each other here.
    return {EventTypes.name(resolve_topic(str(topic))): (int(count), int(size)) for topic, count, size in rows}


def head(conn: psycopg.Connection) -> int:
    row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


def per_task(before: dict[str, int], after: dict[str, int], tasks: int) -> dict[str, float]:
    return {key: round((after.get(key, 0) - before.get(key, 0)) / tasks, 1) for key in after}


def census(stack: Stack, tasks: int, concurrency: int, warmup: int) -> dict[str, Any]:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if warmup > 0:
            asyncio.run(run_workload(stack, warmup, concurrency))
        conn.execute("SELECT pg_stat_statements_reset()")
        conn.execute("SELECT pg_stat_reset()")
        log_before, xacts_before = head(conn), transactions(conn)
        nats_before, woken_before = nats_counts(stack), wakeups_by_process(stack)
        result = asyncio.run(run_workload(stack, tasks, concurrency))
        # Statistics reach the shared counters when a backend goes idle (at most a second later).
        conn.execute("SELECT pg_sleep(1.5)")
        conn.execute("SELECT pg_stat_clear_snapshot()")
        log_after = head(conn)
        by_statement = statements(conn)
        appended = events_appended(conn, log_before, log_after)
        result["events per task"] = round(sum(c for c, _ in appended.values()) / tasks, 1)
        result["bytes appended per task"] = round(sum(s for _, s in appended.values()) / tasks)
        result["events per task, by type"] = {t: round(c / tasks, 2) for t, (c, _) in sorted(appended.items())}
        result["postgres transactions per task"] = round((transactions(conn) - xacts_before) / tasks, 1)
        result["postgres statements per task"] = round(sum(by_statement.values()) / tasks, 1)
        result["postgres statements per task, the most called"] = {
            query: round(calls / tasks, 2) for query, calls in by_statement.most_common(STATEMENTS_SHOWN)
        }
        result["nats per task"] = per_task(nats_before, nats_counts(stack), tasks)
        result["wake-ups per task"] = per_task(woken_before, wakeups_by_process(stack), tasks)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        data_dir = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="census-")))
        stack = Stack(data_dir, Ports.free())
        stack.postgres.settings["shared_preload_libraries"] = "pg_stat_statements"
        scope.enter_context(stack)
        created = stack.create_workspace("default", "default")
        assert created is not None
        stack.api_key = created["apiKey"]
        result = census(stack, args.tasks, args.concurrency, args.warmup)
    print(printed(result))


def printed(result: dict[str, Any]) -> str:
    """One `  name  value` line a measure; a table of them (by type, by statement) indented below it."""
    lines = ["", "Census: what one RW-1 task costs the store, the bus and each process"]
    for key, value in result.items():
        if isinstance(value, dict) and value and all(isinstance(v, int | float) for v in value.values()):
            lines.append(f"  {key}")
            width = max(len(k) for k in value)
            lines += [f"    {k:<{width}}  {v}" for k, v in value.items()]
        else:
            lines.append(f"  {key}  {value}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
