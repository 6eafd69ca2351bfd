"""The worker's configuration: read once from the environment, refused clearly when it cannot be
used, and never showing a token or a key."""

from __future__ import annotations

import pytest

from libs.llm.providers import ProviderAccess
from services.worker.config import ConfigError, load_config

TOKEN = "ags_0b4a6c1e-session_" + "s" * 32
CALLBACK_TOKEN = "cbt_" + "c" * 40
KEY = "sk-ant-" + "k" * 40
REQUIRED = {"ORCHESTRATOR_AGENT_URL": "http://127.0.0.1:8082/", "ORCHESTRATOR_SESSION_TOKEN": TOKEN}


def test_two_settings_are_enough_and_the_rest_have_defaults() -> None:
    config = load_config(REQUIRED)

    assert config.agent_url == "http://127.0.0.1:8082" and config.session_token == TOKEN
    assert (config.run_id, config.task_id, config.callback_url, config.callback_token) == (None, None, None, None)
    assert (config.lease_ttl_s, config.claim_wait_s, config.max_turns) == (30, 120.0, 24)
    assert config.machine_id is None and config.anthropic_api_key is None


def test_every_setting_is_read() -> None:
    config = load_config(
        {
            **REQUIRED,
            "ORCHESTRATOR_RUN_ID": "run-1",
            "ORCHESTRATOR_TASK_ID": "task-1",
            "ORCHESTRATOR_CALLBACK_URL": "https://app.example.com/hooks/runs?sig=abc",
            "ORCHESTRATOR_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "ORCHESTRATOR_LEASE_TTL_SECONDS": "60",
            "ORCHESTRATOR_CLAIM_WAIT_SECONDS": "2.5",
            "ORCHESTRATOR_MAX_TURNS": "5",
            "ANTHROPIC_BASE_URL": "http://127.0.0.1:8900",
            "ANTHROPIC_API_KEY": KEY,
            "OPENAI_BASE_URL": "http://127.0.0.1:8900/v1",
            "OPENAI_API_KEY": "sk-openai-key-1234",
            "FLY_MACHINE_ID": "148e21ea7d4389",
        }
    )

    assert (config.run_id, config.task_id) == ("run-1", "task-1")
    assert config.callback_url == "https://app.example.com/hooks/runs?sig=abc"
    assert config.callback_token == CALLBACK_TOKEN
    assert (config.lease_ttl_s, config.claim_wait_s, config.max_turns) == (60, 2.5, 5)
    assert (config.anthropic_base_url, config.anthropic_api_key) == ("http://127.0.0.1:8900", KEY)
    assert config.openai_base_url == "http://127.0.0.1:8900/v1" and config.machine_id == "148e21ea7d4389"
    assert set(config.secrets) == {TOKEN, CALLBACK_TOKEN, KEY, "sk-openai-key-1234"}


@pytest.mark.parametrize("missing", ["ORCHESTRATOR_AGENT_URL", "ORCHESTRATOR_SESSION_TOKEN"])
def test_a_required_setting_missing_or_empty_is_named(missing: str) -> None:
    for env in ({k: v for k, v in REQUIRED.items() if k != missing}, {**REQUIRED, missing: "  "}):
        with pytest.raises(ConfigError) as refused:
            load_config(env)
        assert str(refused.value).startswith(f"{missing} is not set: set it to ")


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ORCHESTRATOR_AGENT_URL", "127.0.0.1:8082", "ORCHESTRATOR_AGENT_URL is not an http(s) URL"),
        ("ORCHESTRATOR_LEASE_TTL_SECONDS", "0", "must be a whole number of seconds, from 1 to 3600"),
        ("ORCHESTRATOR_LEASE_TTL_SECONDS", "4000", "must be a whole number of seconds, from 1 to 3600"),
        ("ORCHESTRATOR_LEASE_TTL_SECONDS", "2.5", "must be a whole number of seconds"),
        ("ORCHESTRATOR_CLAIM_WAIT_SECONDS", "soon", "must be a number of seconds"),
        ("ORCHESTRATOR_CLAIM_WAIT_SECONDS", "nan", "must be a number of seconds"),
        ("ORCHESTRATOR_MAX_TURNS", "-1", "must be a whole number of model calls, from 1 to 1000"),
        ("ORCHESTRATOR_CALLBACK_URL", "https://x.example.com/", "set together or not at all"),
        ("ORCHESTRATOR_CALLBACK_TOKEN", CALLBACK_TOKEN, "set together or not at all"),
    ],
)
def test_a_setting_that_cannot_be_used_is_refused_with_what_to_set(name: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({**REQUIRED, name: value})

    assert name in str(refused.value) and says in str(refused.value)
    assert CALLBACK_TOKEN not in str(refused.value)


def test_a_callback_url_that_is_not_http_is_refused_without_echoing_it() -> None:
    env = {**REQUIRED, "ORCHESTRATOR_CALLBACK_URL": "ftp://user:pw@x", "ORCHESTRATOR_CALLBACK_TOKEN": CALLBACK_TOKEN}
    with pytest.raises(ConfigError) as refused:
        load_config(env)

    assert str(refused.value) == "ORCHESTRATOR_CALLBACK_URL is not an http(s) URL"


def test_no_token_or_key_is_in_the_repr() -> None:
    config = load_config(
        {
            **REQUIRED,
            "ORCHESTRATOR_CALLBACK_URL": "https://app.example.com/hooks/runs?sig=callback-url-secret",
            "ORCHESTRATOR_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "ANTHROPIC_API_KEY": KEY,
            "OPENAI_API_KEY": "sk-openai-key-1234",
        }
    )
    shown = [repr(config), str(config), f"{config}", repr(list(config.__rich_repr__()))]

    for text in shown:
        assert "http://127.0.0.1:8082" in text and "app.example.com" in text
        for secret in (TOKEN, CALLBACK_TOKEN, KEY, "sk-openai-key-1234", "callback-url-secret"):
            assert secret not in text


def test_the_provider_access_it_builds_shows_no_key() -> None:
    access = ProviderAccess(anthropic_base_url="http://127.0.0.1:8900", anthropic_api_key=KEY)

    assert KEY not in repr(access) and "127.0.0.1:8900" in repr(access)
