"""The worker's configuration from the environment: one frozen Struct, read once at start.

The session token, the callback token and the provider keys are held here only; the repr shows
none of them, and `secrets` lists them for the log filter that masks them wherever they appear."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import msgspec


class ConfigError(ValueError):
    """A setting missing or unusable; the message names the variable and what to set."""


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    agent_url: str  # the agent API's base URL (the runtime service), without a trailing slash
    session_token: str
    run_id: str | None = None  # claim this run only
    task_id: str | None = None  # reported in the callback
    callback_url: str | None = None
    callback_token: str | None = None
    lease_ttl_s: int = 30
    claim_wait_s: float = 120.0  # how long to keep trying to claim
    max_turns: int = 24
    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    machine_id: str | None = None  # the Fly Machine this runs on, when it does
    log_level: str = "INFO"

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.session_token, self.callback_token, self.anthropic_api_key, self.openai_api_key) if s]

    def _shown(self) -> Iterator[tuple[str, Any]]:
        yield "agent_url", self.agent_url
        yield "run_id", self.run_id
        yield "task_id", self.task_id
        # A callback URL may carry a token of its own in its query: only its host is shown.
        yield "callback", urlsplit(self.callback_url).netloc if self.callback_url else None
        yield "lease_ttl_s", self.lease_ttl_s

    def __repr__(self) -> str:  # no token or key ever reaches a log line through a repr
        return "WorkerConfig(" + ", ".join(f"{k}={v!r}" for k, v in self._shown()) + ")"

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:  # msgspec's own would show every field
        yield from self._shown()


def load_config(env: Mapping[str, str]) -> WorkerConfig:
    """The configuration `env` (the process's environment) gives; ConfigError when it cannot be used."""
    callback_url, callback_token = _get(env, "ORCHESTRATOR_CALLBACK_URL"), _get(env, "ORCHESTRATOR_CALLBACK_TOKEN")
    if (callback_url is None) != (callback_token is None):
        raise ConfigError("ORCHESTRATOR_CALLBACK_URL and ORCHESTRATOR_CALLBACK_TOKEN are set together or not at all")
    if callback_url is not None:
        _http_url("ORCHESTRATOR_CALLBACK_URL", callback_url)
    return WorkerConfig(
        agent_url=_http_url("ORCHESTRATOR_AGENT_URL", _required(env, "ORCHESTRATOR_AGENT_URL")).rstrip("/"),
        session_token=_required(env, "ORCHESTRATOR_SESSION_TOKEN"),
        run_id=_get(env, "ORCHESTRATOR_RUN_ID"),
        task_id=_get(env, "ORCHESTRATOR_TASK_ID"),
        callback_url=callback_url,
        callback_token=callback_token,
        lease_ttl_s=int(_number(env, "ORCHESTRATOR_LEASE_TTL_SECONDS", 30, 1, 3600, "a whole number of seconds")),
        claim_wait_s=_number(env, "ORCHESTRATOR_CLAIM_WAIT_SECONDS", 120, 0, 7 * 24 * 3600, "a number of seconds"),
        max_turns=int(_number(env, "ORCHESTRATOR_MAX_TURNS", 24, 1, 1000, "a whole number of model calls")),
        anthropic_base_url=_get(env, "ANTHROPIC_BASE_URL"),
        anthropic_api_key=_get(env, "ANTHROPIC_API_KEY"),
        openai_base_url=_get(env, "OPENAI_BASE_URL"),
        openai_api_key=_get(env, "OPENAI_API_KEY"),
        machine_id=_get(env, "FLY_MACHINE_ID"),
        log_level=(_get(env, "LOG_LEVEL") or "INFO").upper(),
    )


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _required(env: Mapping[str, str], name: str) -> str:
    value = _get(env, name)
    if value is None:
        raise ConfigError(f"{name} is not set: {_WHAT[name]}")
    return value


_WHAT = {
    "ORCHESTRATOR_AGENT_URL": "set it to the agent API's base URL (the runtime service), e.g. http://127.0.0.1:8082",
    "ORCHESTRATOR_SESSION_TOKEN": "set it to an agent session's token (ags_...), made by a key holder of the workspace",
}


def _http_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        # The value itself is not echoed: a URL may carry credentials.
        raise ConfigError(f"{name} is not an http(s) URL")
    return value


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float, what: str) -> float:
    """`what`: the kind of number, as the error names it ("a whole number ..." takes integers only)."""
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw) if what.startswith("a whole") else float(raw)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name} is {raw!r}: it must be {what}, from {low:g} to {high:g}")
    return value
