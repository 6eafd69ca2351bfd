"""The side-by-side benchmark reads back what RW-1 prints and compares the two versions' means."""

from __future__ import annotations

import pytest

from libs.bench.compare import measures, parse_report, render, summarize
from libs.bench.rw1 import report


def result(tasks_per_second: float, executor_ms: float) -> dict:
    """A result as `libs.bench.rw1` builds it."""
    return {
        "tasks": 400,
        "concurrency": 20,
        "seconds": 12.1,
        "tasks_per_second": tasks_per_second,
        "p50_to_review_ms": 330.5,
        "p99_to_review_ms": 480.0,
        "events_per_task": 25.1,
        "errors": {},
        "peak_rss_mb": {"stream": 125.2, "executor": 173.1},
        "cpu_ms_per_task": {"stream": 7.3, "executor": executor_ms, "total": 7.3 + executor_ms},
    }


def test_what_rw1_prints_reads_back_as_its_measures() -> None:
    printed = "starting the stack...\nlog lines\n" + report(result(34.7, 12.4))

    found = measures(parse_report(printed))

    assert found == {
        "tasks_per_second": 34.7,
        "p50_to_review_ms": 330.5,
        "p99_to_review_ms": 480.0,
        "cpu_ms_per_task.stream": 7.3,
        "cpu_ms_per_task.executor": 12.4,
        "cpu_ms_per_task.total": pytest.approx(19.7),
    }


def test_an_output_without_a_report_is_an_error_that_shows_it() -> None:
    with pytest.raises(ValueError, match="Traceback"):
        parse_report("Traceback (most recent call last):\n  ...\nRuntimeError: the stack did not start")


def test_each_measure_is_the_mean_of_its_rounds_and_the_change_is_against_the_other_commit() -> None:
    ours = [measures(result(30.0, 10.0)), measures(result(32.0, 12.0))]
    theirs = [measures(result(25.0, 15.0)), measures(result(27.0, 13.0))]

    rows = {name: (a, b) for name, a, b in summarize(ours, theirs)}

    assert rows["tasks_per_second"] == (31.0, 26.0)
    assert rows["cpu_ms_per_task.executor"] == (11.0, 14.0)
    table = render(summarize(ours, theirs), "main~3")
    assert "tasks_per_second" in table and "+19.2%" in table  # 31 against 26
    assert "-21.4%" in table  # the executor's 11 ms against 14
