"""Reference workload RW-1 (DESIGN.md section 6), through the public HTTP API only.

N codegen tasks on a one-file repository, C in flight: submit, wait for `review` on the SSE
feed, approve, wait for `completed`. Prints tasks/s, p50/p99 submit->review, events appended
per task, and each service's peak RSS. A benchmark, not a test: it passes no judgement.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import aiohttp

from libs.devstack.stack import SERVICES, Ports, Stack

FEED = "/api/v1/workspaces/default/orchestration/events"
DUMP = "/api/v1/workspaces/default/orchestration/debug-dump"
WATCHED = (b"task.review_requested", b"task.completed")


def task_body(i: int, run: str) -> dict:
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
                    "files": {"src/register.py": "def register(user):\n    return user\n"},
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
        event_type = b""
        async for line in r.content:
            if line.startswith(b"event: "):
                event_type = line[7:].rstrip()
            elif line.startswith(b"data: ") and event_type in WATCHED:
                waiters.saw(json.loads(line[6:])["payload"]["task_id"], event_type.decode())


async def run_workload(stack: Stack, n: int, concurrency: int) -> dict:
    # aiohttp: the load generator shares the two cores with the system it measures, and costs
    # about half of what httpx does per request.
    api = aiohttp.ClientSession(
        headers=stack.auth,
        timeout=aiohttp.ClientTimeout(total=60),
        connector=aiohttp.TCPConnector(limit=200),
    )
    head_before = await log_head(api, stack)
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
            async with api.post(stack.gateway_url + "/tasks", json=task_body(i, run)) as response:
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
    head_after = await log_head(api, stack)
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
        "errors": dict(errors),
    }


async def log_head(api: aiohttp.ClientSession, stack: Stack) -> int:
    async with api.get(stack.stream_url + DUMP) as response:
        response.raise_for_status()
        return int((await response.json())["logHead"])


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
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        data_dir = args.keep or Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="rw1-")))
        stack = scope.enter_context(Stack(data_dir, Ports.free()))
        created = stack.create_workspace("default", "default")
        if created is None:
            raise SystemExit(f"--keep {data_dir}: use an empty folder (its workspace's key is not known here)")
        stack.api_key = created["apiKey"]
        if args.warmup > 0:
            asyncio.run(run_workload(stack, args.warmup, args.concurrency))
        before = cpu_by_process(stack)
        result = asyncio.run(run_workload(stack, args.tasks, args.concurrency))
        after = cpu_by_process(stack)
        result["peak_rss_mb"] = {name: round((stack.services[name].peak_rss_kb() or 0) / 1024, 1) for name in SERVICES}
        # CPU spent during the measured run only, per task: where the time goes on a CPU-bound box
        result["cpu_ms_per_task"] = {name: round((after[name] - before[name]) * 1000 / args.tasks, 1) for name in after}
        result["cpu_ms_per_task"]["total"] = round(sum(result["cpu_ms_per_task"].values()), 1)
    print(report(result))


def report(result: dict, title: str = "RW-1: submit -> review (SSE) -> approve -> completed, through HTTP") -> str:
    """The measures, one `  name  value` line each (`libs.bench.compare` reads them back)."""
    width = max(len(k) for k in result)
    lines = ["", title]
    lines += [f"  {key:<{width}}  {value}" for key, value in result.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
