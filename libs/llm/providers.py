"""One completion call through the official `anthropic` or `openai` SDK.

Base URLs, keys, timeouts and retries come from settings; the SDKs retry 429 and 5xx with
backoff (honouring `retry-after`) themselves. Keys are held by the SDK clients only.
"""

from __future__ import annotations

import logging
import time

import anthropic
import msgspec
import openai

from libs.config import Settings
from libs.observability.metrics import LLM_CALLS, LLM_LATENCY

log = logging.getLogger(__name__)


class Usage(msgspec.Struct, frozen=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


class Completion(msgspec.Struct, frozen=True):
    text: str
    usage: Usage
    duration_ms: int


class ProviderError(Exception):
    """A provider call that failed for good (after the SDK's own retries)."""


class Providers:
    def __init__(self, settings: Settings) -> None:
        self.anthropic = anthropic.AsyncAnthropic(
            api_key=settings.anthropic_api_key or "missing-key",
            base_url=settings.anthropic_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        self.openai = openai.AsyncOpenAI(
            api_key=settings.openai_api_key or "missing-key",
            base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s,
            max_retries=settings.llm_max_retries,
        )
        log.info(
            "providers: anthropic at %s, openai at %s",
            self.anthropic.base_url,
            self.openai.base_url,
        )

    async def close(self) -> None:
        await self.anthropic.close()
        await self.openai.close()

    async def complete(
        self, provider: str, model: str, system: str, prompt: str, max_tokens: int, temperature: float
    ) -> Completion:
        started = time.perf_counter()
        try:
            if provider == "openai":
                text, usage = await self._openai(model, system, prompt, max_tokens, temperature)
            else:
                text, usage = await self._anthropic(model, system, prompt, max_tokens, temperature)
        except (anthropic.APIStatusError, openai.APIStatusError) as exc:
            LLM_CALLS.labels(provider, f"http_{exc.status_code}").inc()
            # A fixed text per status, never the provider's message: an authentication error
            # can echo part of the key, and this text ends up in events and API responses.
            raise ProviderError(f"{provider} returned HTTP {exc.status_code} ({_reason(exc.status_code)})") from None
        except (anthropic.APITimeoutError, openai.APITimeoutError):
            LLM_CALLS.labels(provider, "timeout").inc()
            raise ProviderError(f"{provider} call timed out") from None
        except (anthropic.APIConnectionError, openai.APIConnectionError):
            LLM_CALLS.labels(provider, "connection").inc()
            raise ProviderError(f"{provider} could not be reached") from None
        elapsed = time.perf_counter() - started
        LLM_CALLS.labels(provider, "ok").inc()
        LLM_LATENCY.labels(provider).observe(elapsed)
        return Completion(text=text, usage=usage, duration_ms=int(elapsed * 1000))

    async def _anthropic(
        self, model: str, system: str, prompt: str, max_tokens: int, temperature: float
    ) -> tuple[str, Usage]:
        message = await self.anthropic.messages.create(
            model=model,
            system=system,
            max_tokens=max_tokens,
            messages=[{"role": "user", "content": prompt}],
            # This SDK generation dropped `temperature` from its signature; the Messages API
            # still takes it for the models that support sampling control.
            extra_body={"temperature": temperature},
        )
        text = "".join(block.text for block in message.content if block.type == "text")
        u = message.usage
        return text, Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_input_tokens or 0,
            cache_write_tokens=u.cache_creation_input_tokens or 0,
        )

    async def _openai(
        self, model: str, system: str, prompt: str, max_tokens: int, temperature: float
    ) -> tuple[str, Usage]:
        completion = await self.openai.chat.completions.create(
            model=model,
            max_tokens=max_tokens,
            temperature=temperature,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
        )
        text = completion.choices[0].message.content or ""
        u = completion.usage
        cached = (u.prompt_tokens_details.cached_tokens or 0) if u and u.prompt_tokens_details else 0
        return text, Usage(
            input_tokens=(u.prompt_tokens - cached) if u else 0,
            output_tokens=u.completion_tokens if u else 0,
            cache_read_tokens=cached,
        )


_REASONS = {
    400: "the request was refused",
    401: "authentication failed: check the API key",
    403: "permission denied for this key or model",
    404: "unknown model or endpoint",
    408: "the provider timed out",
    413: "the request is too large",
    429: "rate limited",
    529: "the provider is overloaded",
}


def _reason(status: int) -> str:
    return _REASONS.get(status, "provider error" if status >= 500 else "request failed")
