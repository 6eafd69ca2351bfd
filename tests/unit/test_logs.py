"""Invariant 7: keys never reach a log line, whoever logs them."""

from __future__ import annotations

import logging

import pytest

from libs.observability.logs import RedactSecrets, redact


def _render(record: logging.LogRecord) -> str:
    assert RedactSecrets().filter(record) is True
    return record.getMessage()


def _record(msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("test", logging.ERROR, __file__, 1, msg, args, None)


def test_a_configured_key_is_masked_wherever_it_appears(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "local-secret-value-123")
    line = _render(_record("calling with key=%s failed", "local-secret-value-123"))
    assert "local-secret-value-123" not in line
    assert "[redacted]" in line


@pytest.mark.parametrize(
    "key",
    ["sk-ant-api03-abcdefghijklmnop", "sk-proj-ABCDEFGHijklmnop", "ghp_abcdefghijklmnop12", "github_pat_11ABCDEFG_x"],
)
def test_anything_shaped_like_a_provider_or_github_key_is_masked(key: str) -> None:
    line = _render(_record("request failed: %s", f"Authorization: Bearer {key}"))
    assert key not in line
    assert "[redacted]" in line


def test_a_line_without_secrets_is_left_alone() -> None:
    assert _render(_record("task %s reached review", "550e8400")) == "task 550e8400 reached review"


def test_redact_masks_keys_in_any_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "configured-openai-key")
    text = "env: OPENAI_API_KEY=configured-openai-key, token ghp_abcdefghijklmnop12, key sk-proj-ABCDEFGHijklmnop"
    assert redact(text) == "env: OPENAI_API_KEY=[redacted], token [redacted], key [redacted]"
    assert redact("wrote src/register.py (2340 bytes)") == "wrote src/register.py (2340 bytes)"


@pytest.mark.parametrize("name", ["GITHUB_CLIENT_SECRET", "SESSION_SECRET", "GITHUB_APP_PRIVATE_KEY"])
def test_the_sign_in_secrets_are_masked(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "a-sign-in-secret-value")
    assert redact("configured with a-sign-in-secret-value") == "configured with [redacted]"


@pytest.mark.parametrize("token", ["gho_16C7e42F292c6912E7710c8", "ghu_AbCdEfGh12345678", "ghs_AbCdEfGh12345678"])
def test_githubs_oauth_user_and_installation_tokens_are_masked(token: str) -> None:
    assert redact(f"Authorization: token {token}") == "Authorization: token [redacted]"


def test_a_private_key_is_masked_whole_and_by_its_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    body = ["MIIEpAIBAAKCAQEAyQ8x4fhvN0mYf0Kq", "b3JjaGVzdHJhdG9yLWxvY2FsLWtleQ=="]
    pem = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *body, "-----END RSA PRIVATE KEY-----"])
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", pem)

    assert redact(f"key: {pem} loaded") == "key: [redacted] loaded"
    assert body[1] not in redact(f"a line of it: {body[1]}")
    monkeypatch.delenv("GITHUB_APP_PRIVATE_KEY")
    assert redact(f"key: {pem}") == "key: [redacted]"  # a key nobody configured is still masked
