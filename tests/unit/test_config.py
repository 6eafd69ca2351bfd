"""Settings come from the environment (12-factor)."""

from __future__ import annotations

import pytest

from libs.config import load_settings


@pytest.fixture(autouse=True)
def database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql:///orchestrator")
    monkeypatch.delenv("MAX_CONCURRENT_RUNS", raising=False)


def test_an_executor_carries_64_runs_at_once_unless_told_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings("executor", 9102).max_concurrent_runs == 64
    monkeypatch.setenv("MAX_CONCURRENT_RUNS", "8")
    assert load_settings("executor", 9102).max_concurrent_runs == 8


def test_an_executor_carries_at_least_one_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_RUNS", "0")
    assert load_settings("executor", 9102).max_concurrent_runs == 1
