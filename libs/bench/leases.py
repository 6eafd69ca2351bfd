"""Leases under load (spec 002): 8 agent processes work one queue over HTTP.

Tasks that ask for external agents (`agentRuntime: external`, one review subtask each) are
submitted ahead of the agents, then each agent process claims (`claim-next`), and completes
what it claimed at once; one claim in ten it releases instead, and the run goes back to the
queue for another agent to take. Reported: claims per second, claim latency, the hand-over
latency (from a release's answer to the next claim of that run, by anyone), and the check that
no run was ever held by two agents: every run id claimed once, every release claimed again
exactly once. A benchmark, not a test: it passes no judgement, but it exits 1 on a double claim.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from libs.devstack.stack import Ports, Stack

RELEASE_EVERY = 10  # one claim in ten is given back
TASKS_PER_REQUEST = 100  # the most one POST /tasks takes


def submit(stack: Stack, workspace: str, key: str, tasks: int) -> None:
    body = {
        "description": "Review the module",
        "agentType": "review",
        "repo": {
            "owner": "bench",
            "repo": "api",
            "branch": "agent/review",
            "baseBranch": "main",
            "files": {"a.py": "x = 1\n"},
        },
        "config": {"agentRuntime": "external", "maxRetries": 0},
    }
    with httpx.Client(base_url=stack.gateway_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
        for start in range(0, tasks, TASKS_PER_REQUEST):
            count = min(TASKS_PER_REQUEST, tasks - start)
            answer = api.post("/tasks", json={"tasks": [body] * count})
            if answer.status_code != 201:
                raise SystemExit(f"POST /tasks: {answer.status_code} {answer.text}")


def session(stack: Stack, workspace: str, key: str, name: str) -> str:
    url = f"{stack.runtime_url}/api/v1/workspaces/{workspace}/agent-sessions"
    made = httpx.post(url, json={"name": name}, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    made.raise_for_status()
    return str(made.json()["token"])


def agent(runtime_url: str, token: str, index: int, results: Any) -> None:
    """One agent process: claims until the queue stays empty; what it did goes to `results`."""
    claims: list[dict[str, Any]] = []
    with httpx.Client(base_url=runtime_url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        while True:
            asked = time.time()
            answer = api.post("/api/agent/tasks/claim-next", json={"wait_seconds": 2})
            got = time.time()
            if answer.status_code == 204:
                break
            answer.raise_for_status()
            claim = answer.json()["claim"]
            run = claim["run"]
            entry = {
                "run": run["id"],
                "work": (claim["task"]["id"], claim["input"]["subtask_id"], run["attempt"]),
                "handover": run["metadata"]["handover"],
                "asked": asked,
                "claimed": got,
                "agent": index,
            }
            body: dict[str, Any] = {"claim_token": claim["claim_token"]}
            if len(claims) % RELEASE_EVERY == RELEASE_EVERY - 1:
                api.post(f"/api/agent/tasks/{run['id']}/release", json={**body, "reason": "bench"}).raise_for_status()
                entry["released"] = time.time()
            else:
                body["result"] = {"summary": "looks fine", "usage": {"input_tokens": 100, "output_tokens": 20}}
                api.post(f"/api/agent/tasks/{run['id']}/complete", json=body).raise_for_status()
            claims.append(entry)
    results.put(claims)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--keep", type=Path, help="keep the data and logs in this folder")
    args = parser.parse_args()
    with contextlib.ExitStack() as scope:
        data_dir = args.keep or Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="leases-")))
        stack = scope.enter_context(Stack(data_dir, Ports.free()))
        created = stack.create_workspace("bench-leases", "leases benchmark")
        if created is None:
            raise SystemExit(f"--keep {data_dir}: use an empty folder")
        workspace, key = created["workspaceId"], created["apiKey"]
        print(f"submitting {args.tasks} tasks for external agents...", flush=True)
        submit(stack, workspace, key, args.tasks)
        tokens = [session(stack, workspace, key, f"agent-{i}") for i in range(args.agents)]
        results: Any = multiprocessing.Queue()
        agents = [
            multiprocessing.Process(target=agent, args=(stack.runtime_url, t, i, results)) for i, t in enumerate(tokens)
        ]
        started = time.time()
        for process in agents:
            process.start()
        claims = [c for _ in agents for c in results.get()]
        elapsed = time.time() - started
        for process in agents:
            process.join()
    sys.exit(report(claims, elapsed, args.agents, args.tasks))


def p99(ordered: list[float]) -> float:
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


def report(claims: list[dict[str, Any]], elapsed: float, agents: int, tasks: int) -> int:
    runs = [c["run"] for c in claims]
    doubled = len(runs) - len(set(runs))
    released = [c for c in claims if "released" in c]
    by_work: dict[tuple[Any, ...], dict[int, dict[str, Any]]] = {}
    for c in claims:
        by_work.setdefault(tuple(c["work"]), {})[c["handover"]] = c
    handovers = [
        (by_work[tuple(c["work"])][c["handover"] + 1]["claimed"] - c["released"]) * 1000
        for c in released
        if c["handover"] + 1 in by_work[tuple(c["work"])]
    ]
    latencies = sorted((c["claimed"] - c["asked"]) * 1000 for c in claims)
    completed = len(claims) - len(released)
    print(f"leases: {agents} agent processes, {len(claims)} claims of {tasks} tasks' runs in {elapsed:.1f} s")
    print(f"  claims per second      {len(claims) / elapsed:.1f}")
    print(f"  claim latency          p50 {statistics.median(latencies):.1f} ms, p99 {p99(latencies):.1f} ms")
    if handovers:
        handovers.sort()
        print(
            f"  hand-over latency      p50 {statistics.median(handovers):.1f} ms, "
            f"p99 {p99(handovers):.1f} ms ({len(handovers)} releases taken again)"
        )
    print(f"  completed              {completed} of {tasks}")
    print(f"  runs held twice        {doubled}")
    failures = []
    if doubled:
        failures.append(f"{doubled} run(s) claimed twice")
    if completed != tasks:
        failures.append(f"{tasks - completed} task(s) never completed")
    if len(handovers) != len(released):
        failures.append(f"{len(released) - len(handovers)} released run(s) never claimed again")
    for failure in failures:
        print(f"  FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    main()
