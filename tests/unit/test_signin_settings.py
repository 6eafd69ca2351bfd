"""What `GET /api/auth/diagnostics` says of the sign-in's settings: configured, missing or
invalid, and what each is for, never a value; and the 503 that names what a route lacks."""

from __future__ import annotations

import msgspec
import pytest

from libs.config import Settings
from libs.githubserver.accounts import generate_private_key
from libs.web.errors import ApiError
from services.gateway.signin_settings import INSTALLATIONS, SIGN_IN, diagnose, require

KEY = generate_private_key()
SECRETS = {
    "github_client_secret": "client-secret-value-0123456789",
    "session_secret": "session-secret-value-0123456789abcdef",
    "github_webhook_secret": "webhook-secret-value-0123456789",
}


def configured(**changes: object) -> Settings:
    values: dict[str, object] = {
        "service": "gateway",
        "database_url": "postgresql://unused",
        "public_url": "http://localhost:8080",
        "github_client_id": "Iv1.0123456789abcdef",
        "github_app_id": "1",
        "github_app_private_key": KEY,
        **SECRETS,
    }
    return Settings(**(values | changes))  # type: ignore[arg-type]


def test_a_configured_server_is_ready_and_shows_no_value() -> None:
    found = diagnose(configured())
    shown = msgspec.json.encode(found).decode()

    assert (found.sign_in, found.installations) == ("ready", "ready")
    assert {s.name: s.status for s in found.settings} == {
        name: "configured"
        for name in (*SIGN_IN, *INSTALLATIONS, "GITHUB_WEB_URL", "GITHUB_API_URL", "GITHUB_WEBHOOK_SECRET")
    }
    assert all(s.purpose for s in found.settings)
    for value in (*SECRETS.values(), "Iv1.0123456789abcdef", "PRIVATE KEY", KEY.splitlines()[1]):
        assert value not in shown


def test_a_missing_or_invalid_setting_is_named_with_why_and_not_its_value() -> None:
    found = diagnose(
        configured(github_client_secret=None, session_secret="too-short", github_app_private_key="not a key")
    )
    by_name = {s.name: s for s in found.settings}

    assert (found.sign_in, found.installations) == ("not_configured", "not_configured")
    assert by_name["GITHUB_CLIENT_SECRET"].status == "missing"
    assert (by_name["SESSION_SECRET"].status, by_name["SESSION_SECRET"].problem) == (
        "invalid",
        "shorter than 32 characters",
    )
    assert (by_name["GITHUB_APP_PRIVATE_KEY"].status, by_name["GITHUB_APP_PRIVATE_KEY"].problem) == (
        "invalid",
        "not a PEM private key",
    )
    assert "too-short" not in msgspec.json.encode(found).decode()


def test_a_route_lacking_a_setting_is_a_503_naming_it() -> None:
    with pytest.raises(ApiError) as lacking:
        require(configured(github_client_id=None, public_url="localhost"), SIGN_IN, "GitHub sign-in")

    assert lacking.value.status == 503
    assert lacking.value.code == "not_configured"
    assert "GITHUB_CLIENT_ID (missing)" in lacking.value.message
    assert "PUBLIC_URL (invalid)" in lacking.value.message
    require(configured(), SIGN_IN, "GitHub sign-in")  # nothing lacking: no error
