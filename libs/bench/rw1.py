"""Reference workloads RW-1 and RW-2 (DESIGN.md section 6), through the public HTTP API only.

N codegen tasks, C in flight: submit, wait for `review` on the SSE feed, approve, wait for
`completed`. RW-1's repository is one small file; RW-2's is a realistic one (300 files, about
3 MB), the same for every task, as a team's tasks on one repository are. Prints tasks/s, p50/p99
submit->review, events and bytes appended per task, CPU per task by process and each service's
peak RSS. A benchmark, not a test: it passes no judgement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp
import psycopg

from libs.devstack.stack import SERVICES, Ports, Stack
from libs.eventstore.store import EVENTS_TABLE

FEED = "/api/v1/workspaces/default/orchestration/events"
WATCHED = (b"task.review_requested", b"task.completed")


ONE_FILE = {"src/register.py": "def register(user):\n    return user\n"}
RW2_FILES, RW2_BYTES = 300, 3_000_000
TITLES = {
    "rw1": "RW-1: submit -> review (SSE) -> approve -> completed, through HTTP",
    "rw2": f"RW-2: RW-1 on a repository of {RW2_FILES} files, about {RW2_BYTES // 1_000_000} MB",
}


def realistic_repository(files: int = RW2_FILES, size: int = RW2_BYTES, seed: int = 2) -> dict[str, str]:
    """A repository of `files` Python modules in packages, `size` bytes in all, the same each time:
    functions with docstrings and bodies of plausible words, as a real code base has."""
    rng = random.Random(seed)
    words = ["user", "order", "item", "value", "total", "check", "load", "save", "parse", "render", "count"]
    repository: dict[str, str] = {}
    per_file = size // files
    for i in range(files):
        lines = [f'"""Module {i}: {rng.choice(words)} {rng.choice(words)} handling."""', ""]
        while sum(len(line) + 1 for line in lines) < per_file:
            name = f"{rng.choice(words)}_{rng.choice(words)}_{len(lines)}"
            args = ", ".join(rng.sample(words, 3))
            lines += [
                f"def {name}({args}):",
                f'    """{rng.choice(words).title()} the {rng.choice(words)} of {rng.choice(words)}."""',
                f"    return {rng.choice(words)} + {rng.choice(words)} * {rng.randint(1, 99)}",
                "",
            ]
        repository[f"src/pkg{i // 30}/module_{i}.py"] = "\n".join(lines)
    return repository


def task_body(i: int, run: str, files: dict[str, str] = ONE_FILE) -> dict:
    return {
        "tasks": [
            {
                "description": f"Add input validation to endpoint {i}",
                "agentType": "codegen",
                "repo": {
                    "owner": "bench",
                    "repo": "api",
                    # A branch of its own per task, as agents' tasks have: the warm-up's are
                    # not reused by the measured run.
                    "branch": f"agent/bench-{run}-{i}",
                    "baseBranch": "main",
                    "files": files,
                },
            }
        ]
    }


class Waiters:
    """Futures per (task id, event type), resolved by the one SSE reader."""

    def __init__(self) -> None:
        self.futures: dict[tuple[str, str], asyncio.Future[float]] = {}
        self.seen: dict[tuple[str, str], float] = {}

    def wait(self, task_id: str, event_type: str) -> asyncio.Future[float]:
        key = (task_id, event_type)
        future = self.futures.setdefault(key, asyncio.get_running_loop().create_future())
        if key in self.seen and not future.done():
            future.set_result(self.seen[key])
        return future

    def saw(self, task_id: str, event_type: str) -> None:
        key = (task_id, event_type)
        now = time.perf_counter()
        self.seen[key] = now
        future = self.futures.get(key)
        if future is not None and not future.done():
            future.set_result(now)


async def read_feed(
    session: aiohttp.ClientSession, url: str, since: int, waiters: Waiters, ready: asyncio.Event
) -> None:
    async with session.get(url, params={"since_seq": str(since)}, timeout=aiohttp.ClientTimeout()) as r:
        r.raise_for_status()
        ready.set()
        event_type, pending = b"", b""
        # By chunks, not `readline`: a frame's line may be longer than aiohttp reads as one line.
        async for chunk in r.content.iter_any():
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.startswith(b"event: "):
                    event_type = line[7:].rstrip()
                elif line.startswith(b"data: ") and event_type in WATCHED:
                    waiters.saw(json.loads(line[6:])["payload"]["task_id"], event_type.decode())


async def run_workload(stack: Stack, n: int, concurrency: int, files: dict[str, str] = ONE_FILE) -> dict:
    # aiohttp: the load generator shares the two cores with the system it measures, and costs
    # about half of what httpx does per request.
    api = aiohttp.ClientSession(
        headers=stack.auth,
        timeout=aiohttp.ClientTimeout(total=60),
        connector=aiohttp.TCPConnector(limit=200),
    )
    head_before = await log_head(stack)
    waiters = Waiters()
    ready = asyncio.Event()
    reader = asyncio.create_task(read_feed(api, stack.stream_url + FEED, head_before, waiters, ready))
    # The feed open, or the reader's error (a refused feed) rather than a wait forever.
    await asyncio.wait({reader, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if reader.done():
        reader.result()
    limit = asyncio.Semaphore(concurrency)
    run = f"{head_before:x}"
    to_review: list[float] = []
    errors: dict[str, int] = defaultdict(int)

    async def one(i: int) -> None:
        async with limit:
            started = time.perf_counter()
            async with api.post(stack.gateway_url + "/tasks", json=task_body(i, run, files)) as response:
                if response.status != 201:
                    errors[f"submit {response.status}"] += 1
                    return
                (task_id,) = (await response.json())["taskIds"]
            reviewed = await asyncio.wait_for(waiters.wait(task_id, "task.review_requested"), 120)
            to_review.append(reviewed - started)
            decision = {"taskId": task_id, "decision": "approve"}
            async with api.post(f"{stack.gateway_url}/tasks/{task_id}/review", json=decision) as review:
                if review.status != 200:
                    errors[f"review {review.status}"] += 1
                    return
            await asyncio.wait_for(waiters.wait(task_id, "task.completed"), 120)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    reader.cancel()
    head_after = await log_head(stack)
    await api.close()
    to_review.sort()
    return {
        "tasks": n,
        "concurrency": concurrency,
        "seconds": round(elapsed, 2),
        "tasks_per_second": round(n / elapsed, 1),
        "p50_to_review_ms": round(statistics.median(to_review) * 1000, 1) if to_review else None,
        "p99_to_review_ms": round(to_review[int(len(to_review) * 0.99) - 1] * 1000, 1) if to_review else None,
        "events_per_task": round((head_after - head_before) / n, 1),
        "bytes_appended_per_task": round(await asyncio.to_thread(bytes_appended, stack, head_before, head_after) / n),
        "errors": dict(errors),
    }


def bytes_appended(stack: Stack, after: int, through: int) -> int:
    """What the events appended in (after, through] take in the event store, as stored."""
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT coalesce(sum(octet_length(state)), 0) FROM {EVENTS_TABLE} "
            "WHERE notification_id > %s AND notification_id <= %s",
            (after, through),
        ).fetchone()
    return int(row[0]) if row else 0


async def log_head(stack: Stack) -> int:
    """The log's last `seq`, read from the store itself: the debug dump also says it, but it
    renders every task of the workspace, which inside the measured window would charge the
    stream service for the dump, not for the workload."""
    return await asyncio.to_thread(_log_head, stack)


def _log_head(stack: Stack) -> int:
    with psycopg.connect(stack.database_url, autocommit=True) as conn:
        row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


def cpu_seconds(pid: int | None, children: bool = False) -> float:
    """User + system CPU of a process (and, for PostgreSQL, its backends) so far."""
    if pid is None:
        return 0.0
    pids = [pid]
    if children:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = 0
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_by_process(stack: Stack) -> dict[str, float]:
    cpu = {name: cpu_seconds(stack.services[name].pid) for name in SERVICES}
    cpu["postgres"] = cpu_seconds(stack.postgres.pid, children=True)
    cpu["nats"] = cpu_seconds(stack.nats.pid)
    cpu["model-server"] = cpu_seconds(stack.model_server.pid if stack.model_server else None)
    cpu["github-server"] = cpu_seconds(stack.github_server.pid if stack.github_server else None)
    cpu["bench-client"] = cpu_seconds(os.getpid())
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=40)
    parser.add_argument("--keep", type=Path, help="keep the data and logs in this folder")
    parser.add_argument("--workload", choices=["rw1", "rw2", "both"], default="rw1")
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        data_dir = args.keep or Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="rw1-")))
        stack = scope.enter_context(Stack(data_dir, Ports.free()))
        created = stack.create_workspace("default", "default")
        if created is None:
            raise SystemExit(f"--keep {data_dir}: use an empty folder (its workspace's key is not known here)")
        stack.api_key = created["apiKey"]
        reports: dict[str, str] = {}
        for workload in ("rw1", "rw2") if args.workload == "both" else (args.workload,):
            files = realistic_repository() if workload == "rw2" else ONE_FILE
            result = measured(stack, args.tasks, args.concurrency, args.warmup, files)
            reports[workload] = report(result, TITLES[workload])
        # RW-1 measured first, printed last: the peers' side-by-side script reads the last value
        # of each measure in this output as the product's RW-1.
        print("\n".join(reports[w] for w in sorted(reports, reverse=True)), flush=True)


def measured(stack: Stack, tasks: int, concurrency: int, warmup: int, files: dict[str, str]) -> dict:
    if warmup > 0:
        asyncio.run(run_workload(stack, warmup, concurrency, files))
    before = cpu_by_process(stack)
    result = asyncio.run(run_workload(stack, tasks, concurrency, files))
    after = cpu_by_process(stack)
    result["repository_bytes"] = sum(len(content.encode()) for content in files.values())
    # Peak since the stack started: for RW-2 after RW-1, the larger of the two.
    result["peak_rss_mb"] = {name: round((stack.services[name].peak_rss_kb() or 0) / 1024, 1) for name in SERVICES}
    # CPU spent during the measured run only, per task: where the time goes on a CPU-bound box
    result["cpu_ms_per_task"] = {name: round((after[name] - before[name]) * 1000 / tasks, 1) for name in after}
    result["cpu_ms_per_task"]["total"] = round(sum(result["cpu_ms_per_task"].values()), 1)
    return result


def report(result: dict, title: str = TITLES["rw1"]) -> str:
    """The measures, one `  name  value` line each (`libs.bench.compare` reads them back)."""
    width = max(len(k) for k in result)
    lines = ["", title]
    lines += [f"  {key:<{width}}  {value}" for key, value in result.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
