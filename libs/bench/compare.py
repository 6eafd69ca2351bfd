"""RW-1 side by side: this checkout against another commit, both running at the same time.

This machine's speed drifts by 20% and more within the hour, so two runs one after the other
measure the hour as much as the code. Run at once, both versions share the cores and see the
same drift: each round starts both benchmarks together (each with its own embedded stack), and
the table gives each measure's mean per version and how much this checkout differs. Both get
half the machine, so the absolute numbers are below a lone run's; compare the columns.
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADLINE = ("tasks_per_second", "p50_to_review_ms", "p99_to_review_ms")


def parse_report(text: str) -> dict[str, object]:
    """The measures `libs.bench.rw1` prints (`  name  value` lines after its title)."""
    _, found, table = text.partition("RW-1:")
    if not found:
        raise ValueError(f"no RW-1 report in the benchmark's output:\n{text[-2000:]}")
    report: dict[str, object] = {}
    for line in table.splitlines()[1:]:
        if not line.startswith("  "):
            break  # the report is over (a warning printed at exit may follow it)
        name, _, value = line.strip().partition(" ")
        report[name] = ast.literal_eval(value.strip())
    return report


def measures(report: dict[str, object]) -> dict[str, float]:
    """The numbers worth comparing: the headline ones, and CPU per task by process."""
    found = {name: float(report[name]) for name in HEADLINE if isinstance(report.get(name), int | float)}
    cpu = report.get("cpu_ms_per_task")
    if isinstance(cpu, dict):
        found.update({f"cpu_ms_per_task.{process}": float(ms) for process, ms in cpu.items()})
    return found


def summarize(ours: Iterable[dict[str, float]], theirs: Iterable[dict[str, float]]) -> list[tuple[str, float, float]]:
    """(measure, our mean, their mean) for each measure both sides report."""
    ours, theirs = list(ours), list(theirs)
    names = [n for n in ours[0] if all(n in r for r in [*ours, *theirs])] if ours and theirs else []
    return [(n, statistics.fmean(r[n] for r in ours), statistics.fmean(r[n] for r in theirs)) for n in names]


def render(rows: list[tuple[str, float, float]], against: str) -> str:
    width = max((len(name) for name, _, _ in rows), default=10)
    lines = [f"  {'measure':<{width}}  {'this':>9}  {against[:12]:>12}  {'change':>8}"]
    for name, ours, theirs in rows:
        change = f"{(ours - theirs) / theirs * 100:+.1f}%" if theirs else "n/a"
        lines.append(f"  {name:<{width}}  {ours:>9.1f}  {theirs:>12.1f}  {change:>8}")
    return "\n".join(lines)


def _bench(python: str, tree: Path, args: argparse.Namespace) -> subprocess.Popen[str]:
    command = [python, "-m", "libs.bench.rw1", "--tasks", str(args.tasks), "--concurrency", str(args.concurrency)]
    return subprocess.Popen(command, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", required=True, help="the commit (or branch, tag) to compare with")
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw1-against-") as scratch:
        other = Path(scratch) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--quiet", "--detach", str(other), args.against], cwd=ROOT, check=True
        )
        try:
            # Its own locked environment: the other commit may pin other versions.
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
            env.pop("VIRTUAL_ENV", None)
            subprocess.run(["uv", "sync", "--frozen", "--quiet"], cwd=other, check=True, env=env)
            ours: list[dict[str, float]] = []
            theirs: list[dict[str, float]] = []
            for round_ in range(1, args.rounds + 1):
                running = _bench(sys.executable, ROOT, args), _bench(str(other / ".venv/bin/python"), other, args)
                outputs = [p.communicate()[0] for p in running]
                for process, output in zip(running, outputs, strict=True):
                    if process.returncode != 0:
                        raise SystemExit(f"a benchmark failed (exit {process.returncode}):\n{output[-3000:]}")
                ours.append(measures(parse_report(outputs[0])))
                theirs.append(measures(parse_report(outputs[1])))
                print(
                    f"round {round_}/{args.rounds}: this {ours[-1].get('tasks_per_second')} tasks/s, "
                    f"{args.against} {theirs[-1].get('tasks_per_second')} tasks/s",
                    file=sys.stderr,
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, check=False)
    print(f"\nRW-1 side by side, {args.rounds} round(s) of {args.tasks} tasks, {args.concurrency} in flight:")
    print(render(summarize(ours, theirs), args.against))


if __name__ == "__main__":
    main()
