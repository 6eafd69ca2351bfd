"""Model calls through the official `anthropic` and `openai` SDKs, one conversation turn each.

Base URLs, keys, timeouts and retries come from settings (a service's `Settings`, or a
`ProviderAccess` for a process that has no `Settings`, such as the worker). The SDKs retry 408, 409, 429 and 5xx
with exponential backoff, honouring `retry-after`; what still fails arrives here and becomes a
`ProviderError` that says whether trying again later can help (a timeout, an overload) or not
(a bad key, an unknown model). Keys are held by the SDK clients only and never logged.

A workspace that stores its own key for a provider has its calls made with it (`for_workspace`):
a copy of the provider's client with that key, sharing the client's connection pool, kept per
workspace and replaced when the workspace's key changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

from libs.config import Settings
from libs.llm.conversation import Conversation, Tool, ToolUse, Turn, Usage
from libs.observability.metrics import LLM_CALLS, LLM_LATENCY

log = logging.getLogger(__name__)

# Failures no retry can fix: the key, the permission or the request itself is wrong.
PERMANENT = frozenset({400, 401, 403, 404, 413, 422})


class ProviderError(Exception):
    """A model call that failed for good (after the SDK's own retries)."""

    def __init__(self, message: str, retryable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


# Workspaces whose own clients are kept at once; past it the kept ones are dropped (and made
# again when next used: a copy of a client costs no connection).
MAX_OWN_CLIENTS = 1024


@dataclass(frozen=True, repr=False)
class OwnKeys:
    """A workspace's own keys for the providers (by provider), opened; and, by provider, why a
    key the workspace stores cannot be used (its calls to that provider then fail, rather than
    go out on the environment's key, which someone else pays for)."""

    workspace_id: str
    keys: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # the keys never reach a log line through a repr
        return f"OwnKeys(workspace_id={self.workspace_id!r}, providers={sorted(self.keys)!r})"


@dataclass(frozen=True, repr=False)
class ProviderAccess:
    """Where the providers are, the keys they take, and how long and how often a call is tried:
    what `Providers` needs of a process's configuration. None: the SDK's own default."""

    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 2

    @classmethod
    def of(cls, settings: Settings) -> ProviderAccess:
        return cls(
            anthropic_base_url=settings.anthropic_base_url,
            anthropic_api_key=settings.anthropic_api_key,
            openai_base_url=settings.openai_base_url,
            openai_api_key=settings.openai_api_key,
            timeout_s=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )

    def __repr__(self) -> str:  # the keys never reach a log line through a repr
        urls = f"anthropic_base_url={self.anthropic_base_url!r}, openai_base_url={self.openai_base_url!r}"
        return f"ProviderAccess({urls})"


class Providers:
    def __init__(self, settings: Settings | ProviderAccess) -> None:
        access = settings if isinstance(settings, ProviderAccess) else ProviderAccess.of(settings)
        # The SDKs' aiohttp transport (their `aiohttp` extra): the same client API, with a
        # fraction of httpx's per-request CPU, which the executor's profile was dominated by.
        self.anthropic = anthropic.AsyncAnthropic(
            api_key=access.anthropic_api_key or "missing-key",
            base_url=access.anthropic_base_url,
            timeout=access.timeout_s,
            max_retries=access.max_retries,
            http_client=anthropic.DefaultAioHttpClient(timeout=access.timeout_s),
        )
        self.openai = openai.AsyncOpenAI(
            api_key=access.openai_api_key or "missing-key",
            base_url=access.openai_base_url,
            timeout=access.timeout_s,
            max_retries=access.max_retries,
            http_client=openai.DefaultAioHttpClient(timeout=access.timeout_s),
        )
        # (workspace, provider) -> (the key's digest, the client copy that sends it)
        self._own: dict[tuple[str, str], tuple[bytes, Any]] = {}
        log.info(
            "providers: anthropic at %s, openai at %s",
            self.anthropic.base_url,
            self.openai.base_url,
        )

    def for_workspace(self, own: OwnKeys) -> WorkspaceModel:
        """The model calls of a workspace's agents: with its own key for a provider it stores
        one for, with the environment's otherwise."""
        return WorkspaceModel(self, own)

    def _client(self, provider: str, own: OwnKeys | None) -> Any:
        shared = self.openai if provider == "openai" else self.anthropic
        key = own.keys.get(provider) if own is not None else None
        if own is None or key is None:
            return shared
        digest = hashlib.sha256(key.encode()).digest()
        kept = self._own.get((own.workspace_id, provider))
        if kept is None or kept[0] != digest:
            if len(self._own) >= MAX_OWN_CLIENTS:
                self._own.clear()
            # The copy shares the shared client's HTTP connections: nothing of its own to close.
            kept = (digest, shared.copy(api_key=key, base_url=shared.base_url))
            self._own[own.workspace_id, provider] = kept
        return kept[1]

    async def close(self) -> None:
        await self.anthropic.close()
        await self.openai.close()

    async def converse(
        self,
        provider: str,
        model: str,
        conversation: Conversation,
        tools: tuple[Tool, ...],
        max_tokens: int,
        temperature: float,
        own: OwnKeys | None = None,
    ) -> Turn:
        """One model answer to the conversation so far, offering `tools`; with the workspace's
        own key for the provider when `own` holds one."""
        problem = own.problems.get(provider) if own is not None else None
        if problem is not None:
            LLM_CALLS.labels(provider, "own_key_unusable").inc()
            raise ProviderError(problem, retryable=False)
        client = self._client(provider, own)
        started = time.perf_counter()
        try:
            if provider == "openai":
                text, uses, usage, stop = await _openai(client, model, conversation, tools, max_tokens, temperature)
            else:
                text, uses, usage, stop = await _anthropic(client, model, conversation, tools, max_tokens, temperature)
        except ProviderError:
            LLM_CALLS.labels(provider, "bad_answer").inc()
            raise
        except (anthropic.APIStatusError, openai.APIStatusError) as exc:
            LLM_CALLS.labels(provider, f"http_{exc.status_code}").inc()
            # A fixed text per status, never the provider's message: an authentication error
            # can echo part of the key, and this text ends up in events and API responses.
            raise ProviderError(
                f"{provider} returned HTTP {exc.status_code} ({_reason(exc.status_code)})",
                retryable=exc.status_code not in PERMANENT,
                status=exc.status_code,
            ) from None
        except (anthropic.APITimeoutError, openai.APITimeoutError):
            LLM_CALLS.labels(provider, "timeout").inc()
            raise ProviderError(f"{provider} call timed out", retryable=True) from None
        except (anthropic.APIConnectionError, openai.APIConnectionError):
            LLM_CALLS.labels(provider, "connection").inc()
            raise ProviderError(f"{provider} could not be reached", retryable=True) from None
        elapsed = time.perf_counter() - started
        LLM_CALLS.labels(provider, "ok").inc()
        LLM_LATENCY.labels(provider).observe(elapsed)
        return Turn(text=text, tool_uses=uses, usage=usage, stop_reason=stop, duration_ms=int(elapsed * 1000))


@dataclass(frozen=True, repr=False)
class WorkspaceModel:
    """What an agent of one workspace talks to: `Providers` with that workspace's own keys."""

    providers: Providers
    own: OwnKeys

    async def converse(
        self,
        provider: str,
        model: str,
        conversation: Conversation,
        tools: tuple[Tool, ...],
        max_tokens: int,
        temperature: float,
    ) -> Turn:
        return await self.providers.converse(provider, model, conversation, tools, max_tokens, temperature, self.own)


async def _anthropic(
    client: anthropic.AsyncAnthropic,
    model: str,
    conversation: Conversation,
    tools: tuple[Tool, ...],
    max_tokens: int,
    temperature: float,
) -> tuple[str, list[ToolUse], Usage, str]:
    message = await client.messages.create(
        model=model,
        system=conversation.system,
        max_tokens=max_tokens,
        messages=conversation.messages,  # type: ignore[arg-type]
        tools=conversation.tool_specs(tools),  # type: ignore[arg-type]
        # This SDK generation dropped `temperature` from its signature; the Messages API
        # still takes it for the models that support sampling control.
        extra_body={"temperature": temperature},
    )
    text = "".join(block.text for block in message.content if block.type == "text")
    uses = [ToolUse(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
    u = message.usage
    usage = Usage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_input_tokens or 0,
        cache_write_tokens=u.cache_creation_input_tokens or 0,
    )
    return text, uses, usage, message.stop_reason or "end_turn"


async def _openai(
    client: openai.AsyncOpenAI,
    model: str,
    conversation: Conversation,
    tools: tuple[Tool, ...],
    max_tokens: int,
    temperature: float,
) -> tuple[str, list[ToolUse], Usage, str]:
    completion = await client.chat.completions.create(
        model=model,
        max_tokens=max_tokens,
        temperature=temperature,
        messages=conversation.messages,  # type: ignore[arg-type]
        tools=conversation.tool_specs(tools),  # type: ignore[arg-type]
    )
    if not completion.choices:
        # Some OpenAI-compatible servers answer an overloaded request this way.
        raise ProviderError("openai answered without a choice", retryable=True)
    choice = completion.choices[0]
    uses = [
        ToolUse(call.id, call.function.name, _arguments(call.function.arguments))
        for call in choice.message.tool_calls or []
        if call.type == "function"
    ]
    u = completion.usage
    cached = (u.prompt_tokens_details.cached_tokens or 0) if u and u.prompt_tokens_details else 0
    usage = Usage(
        input_tokens=(u.prompt_tokens - cached) if u else 0,
        output_tokens=u.completion_tokens if u else 0,
        cache_read_tokens=cached,
    )
    return choice.message.content or "", uses, usage, choice.finish_reason or "stop"


def _arguments(raw: str) -> Any:
    # The model wrote these; invalid JSON is answered as a tool error, not a crash.
    try:
        return json.loads(raw or "{}")
    except ValueError:
        return raw


_REASONS = {
    400: "the request was refused",
    401: "authentication failed: check the API key",
    403: "permission denied for this key or model",
    404: "unknown model or endpoint",
    408: "the provider timed out",
    413: "the request is too large",
    422: "the request was refused",
    429: "rate limited",
    529: "the provider is overloaded",
}


def _reason(status: int) -> str:
    return _REASONS.get(status, "provider error" if status >= 500 else "request failed")
