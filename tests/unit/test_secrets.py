"""Stored credentials are sealed with AES-256-GCM under SECRETS_KEY, bound to their workspace and
name: they open only there, with that key, unaltered."""

from __future__ import annotations

import base64

import pytest

from libs.config import load_settings
from libs.secrets import SealError, SecretsKeyError, last4, new_key, parse_key, seal, unseal

KEY = parse_key(new_key())
TOKEN = "sk-ant-api03-" + "Q" * 40 + "wxyz"


def test_a_sealed_value_opens_with_its_key_for_its_workspace_and_name() -> None:
    sealed = seal(KEY, "team-a", "anthropic_api_key", TOKEN)

    assert unseal(KEY, "team-a", "anthropic_api_key", sealed) == TOKEN
    assert TOKEN not in sealed and TOKEN[:-4] not in sealed
    assert sealed.startswith("v1.")


def test_sealing_the_same_value_twice_gives_two_different_sealed_values() -> None:
    assert seal(KEY, "team-a", "github_token", TOKEN) != seal(KEY, "team-a", "github_token", TOKEN)


@pytest.mark.parametrize(
    ("workspace", "name", "key"),
    [
        ("team-b", "anthropic_api_key", KEY),  # copied to another workspace
        ("team-a", "openai_api_key", KEY),  # moved to another name
        ("team-a", "anthropic_api_key", parse_key(new_key())),  # another SECRETS_KEY
    ],
)
def test_a_sealed_value_does_not_open_anywhere_else(workspace: str, name: str, key: bytes) -> None:
    sealed = seal(KEY, "team-a", "anthropic_api_key", TOKEN)

    with pytest.raises(SealError):
        unseal(key, workspace, name, sealed)


def test_an_altered_sealed_value_does_not_open() -> None:
    sealed = seal(KEY, "team-a", "anthropic_api_key", TOKEN)
    raw = bytearray(base64.b64decode(sealed.removeprefix("v1.")))
    raw[-1] ^= 1

    for altered in ("v1." + base64.b64encode(bytes(raw)).decode(), sealed.removeprefix("v1."), "v1.!!", "v1.AAAA"):
        with pytest.raises(SealError):
            unseal(KEY, "team-a", "anthropic_api_key", altered)


@pytest.mark.parametrize("text", ["not base64 at all!", base64.b64encode(b"x" * 16).decode(), ""])
def test_a_secrets_key_that_is_not_32_bytes_of_base64_is_refused_without_quoting_it(text: str) -> None:
    with pytest.raises(SecretsKeyError) as refused:
        parse_key(text)

    assert "SECRETS_KEY" in str(refused.value)
    assert not text or text not in str(refused.value)


def test_a_service_does_not_start_with_a_secrets_key_it_cannot_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql:///orchestrator")
    monkeypatch.setenv("SECRETS_KEY", "c2hvcnQta2V5LXZhbHVl")

    with pytest.raises(SystemExit) as stopped:
        load_settings("gateway", 8080)

    assert "SECRETS_KEY" in str(stopped.value.code) and "c2hvcnQta2V5LXZhbHVl" not in str(stopped.value.code)


def test_settings_read_the_secrets_key_and_keep_it_out_of_their_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    text = new_key()
    monkeypatch.setenv("DATABASE_URL", "postgresql:///orchestrator")
    monkeypatch.setenv("SECRETS_KEY", text)

    settings = load_settings("gateway", 8080)

    assert settings.secrets_key == base64.b64decode(text)
    assert text not in repr(settings)
    monkeypatch.delenv("SECRETS_KEY")
    assert load_settings("gateway", 8080).secrets_key is None


def test_a_read_shows_the_last_four_characters() -> None:
    assert last4(TOKEN) == "wxyz"
