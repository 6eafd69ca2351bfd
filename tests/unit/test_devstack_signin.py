"""`./just up` and the test stack configure GitHub sign-in against the local GitHub server: the
gateway, and only the gateway, gets the App's key, the OAuth client's secret and a session
secret made once and kept with the data; every service learns the public URL."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from libs.devstack.stack import LOCAL_GITHUB_APP_ID, LOCAL_GITHUB_CLIENT_ID, Ports, Stack

SIGN_IN_SECRETS = ("SESSION_SECRET", "GITHUB_CLIENT_SECRET", "GITHUB_APP_PRIVATE_KEY", "GITHUB_WEBHOOK_SECRET")


@pytest.fixture(autouse=True)
def no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GITHUB_TOKEN", "SESSION_SECRET", "PUBLIC_URL", "ADMIN_TOKEN", "GITHUB_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_the_gateway_signs_in_with_the_local_github_servers_app(tmp_path: Path) -> None:
    stack = Stack(tmp_path, Ports.free())

    gateway, executor = stack.service_env("gateway"), stack.service_env("executor")

    assert stack.uses_local_github
    assert gateway["GITHUB_APP_ID"] == LOCAL_GITHUB_APP_ID
    assert gateway["GITHUB_APP_PRIVATE_KEY"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert gateway["GITHUB_CLIENT_ID"] == LOCAL_GITHUB_CLIENT_ID
    assert gateway["GITHUB_WEB_URL"] == gateway["GITHUB_API_URL"] == stack.github_url
    assert len(gateway["SESSION_SECRET"]) >= 32 and len(gateway["GITHUB_CLIENT_SECRET"]) >= 32
    assert len(gateway["GITHUB_WEBHOOK_SECRET"]) >= 32
    assert gateway["PUBLIC_URL"] == executor["PUBLIC_URL"] == stack.gateway_url
    assert not set(SIGN_IN_SECRETS) & set(executor)


def test_the_secrets_are_made_once_and_kept_with_the_data_for_their_owner_only(tmp_path: Path) -> None:
    first = Stack(tmp_path, Ports.free()).service_env("gateway")
    second = Stack(tmp_path, Ports.free()).service_env("gateway")

    for name in SIGN_IN_SECRETS:
        assert first[name] == second[name], name
    for kept in ("session-secret", "github-client-secret", "github-app.pem", "github-webhook-secret"):
        assert stat.S_IMODE((tmp_path / kept).stat().st_mode) == 0o600, kept


def test_a_session_secret_and_public_url_from_the_environment_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_SECRET", "from-the-environment-" * 3)
    monkeypatch.setenv("PUBLIC_URL", "https://agents.example.com")

    gateway = Stack(tmp_path, Ports.free()).service_env("gateway")

    assert gateway["SESSION_SECRET"] == "from-the-environment-" * 3
    assert gateway["PUBLIC_URL"] == "https://agents.example.com"
    assert not (tmp_path / "session-secret").exists()


def test_a_webhook_secret_from_the_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "set-by-the-operator-0123456789")

    gateway = Stack(tmp_path, Ports.free()).service_env("gateway")

    assert gateway["GITHUB_WEBHOOK_SECRET"] == "set-by-the-operator-0123456789"
    assert not (tmp_path / "github-webhook-secret").exists()
