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

import httpx

from libs.devstack.stack import SERVICES, Ports, Stack

FEED = "/api/v1/workspaces/default/orchestration/events"
DUMP = "/api/v1/workspaces/default/orchestration/debug-dump"


def task_body(i: int) -> dict:
    return {
        "tasks": [
            {
                "description": f"Add input validation to endpoint {i}",
                "agentType": "codegen",
                "repo": {
                    "owner": "bench",
                    "repo": "api",
                    "branch": f"agent/bench-{i}",
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


async def read_feed(url: str, auth: dict[str, str], since: int, waiters: Waiters, ready: asyncio.Event) -> None:
    async with (
        httpx.AsyncClient(timeout=None, headers=auth) as client,
        client.stream("GET", f"{url}?since_seq={since}") as r,
    ):
        ready.set()
        event_type = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event_type = line[7:]
            elif line.startswith("data: ") and event_type in ("task.review_requested", "task.completed"):
                waiters.saw(json.loads(line[6:])["payload"]["task_id"], event_type)


async def run_workload(stack: Stack, n: int, concurrency: int) -> dict:
    api = httpx.AsyncClient(
        base_url=stack.gateway_url, timeout=60, limits=httpx.Limits(max_connections=200), headers=stack.auth
    )
    head_before = (await api.get(stack.stream_url + DUMP)).json()["logHead"]
    waiters = Waiters()
    ready = asyncio.Event()
    reader = asyncio.create_task(read_feed(stack.stream_url + FEED, stack.auth, head_before, waiters, ready))
    await ready.wait()
    limit = asyncio.Semaphore(concurrency)
    to_review: list[float] = []
    errors: dict[str, int] = defaultdict(int)

    async def one(i: int) -> None:
        async with limit:
            started = time.perf_counter()
            response = await api.post("/tasks", json=task_body(i))
            if response.status_code != 201:
                errors[f"submit {response.status_code}"] += 1
                return
            (task_id,) = response.json()["taskIds"]
            reviewed = await asyncio.wait_for(waiters.wait(task_id, "task.review_requested"), 120)
            to_review.append(reviewed - started)
            review = await api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"})
            if review.status_code != 200:
                errors[f"review {review.status_code}"] += 1
                return
            await asyncio.wait_for(waiters.wait(task_id, "task.completed"), 120)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    reader.cancel()
    head_after = (await api.get(stack.stream_url + DUMP)).json()["logHead"]
    await api.aclose()
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
        asyncio.run(run_workload(stack, args.warmup, args.concurrency))
        before = cpu_by_process(stack)
        result = asyncio.run(run_workload(stack, args.tasks, args.concurrency))
        after = cpu_by_process(stack)
        result["peak_rss_mb"] = {name: round((stack.services[name].peak_rss_kb() or 0) / 1024, 1) for name in SERVICES}
        # CPU spent during the measured run only, per task: where the time goes on a CPU-bound box
        result["cpu_ms_per_task"] = {name: round((after[name] - before[name]) * 1000 / args.tasks, 1) for name in after}
        result["cpu_ms_per_task"]["total"] = round(sum(result["cpu_ms_per_task"].values()), 1)
    width = max(len(k) for k in result)
    print("\nRW-1: submit -> review (SSE) -> approve -> completed, through HTTP")
    for key, value in result.items():
        print(f"  {key:<{width}}  {value}")


if __name__ == "__main__":
    main()
