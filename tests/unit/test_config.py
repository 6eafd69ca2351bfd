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


@pytest.mark.parametrize(
    ("api", "web"),
    [
        (None, "https://github.com"),
        ("https://api.github.com", "https://github.com"),
        ("https://ghe.example.com/api/v3", "https://ghe.example.com"),
        ("http://127.0.0.1:8901", "http://127.0.0.1:8901"),
    ],
)
def test_where_people_sign_in_follows_the_api_unless_set(
    monkeypatch: pytest.MonkeyPatch, api: str | None, web: str
) -> None:
    monkeypatch.delenv("GITHUB_WEB_URL", raising=False)
    if api is None:
        monkeypatch.delenv("GITHUB_API_URL", raising=False)
    else:
        monkeypatch.setenv("GITHUB_API_URL", api)
    assert load_settings("gateway", 8080).github_web_url == web
    monkeypatch.setenv("GITHUB_WEB_URL", "https://sign-in.example.com")
    assert load_settings("gateway", 8080).github_web_url == "https://sign-in.example.com"


def test_an_app_key_written_on_one_line_gets_its_line_breaks_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "GITHUB_APP_PRIVATE_KEY", "-----BEGIN RSA PRIVATE KEY-----\\nMIIE\\n-----END RSA PRIVATE KEY-----"
    )
    key = load_settings("gateway", 8080).github_app_private_key
    assert key == "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----"


def test_no_secret_shows_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_CLIENT_SECRET", "SESSION_SECRET", "GITHUB_APP_PRIVATE_KEY"):
        monkeypatch.setenv(name, f"value-of-{name}")
    shown = repr(load_settings("gateway", 8080))
    assert "value-of-" not in shown
