"""The executor's GitHub client: githubkit with a token, over one connection pool for the
process."""

from __future__ import annotations

import urllib.request
from typing import Any

import aiohttp
import httpx
from githubkit import GitHub, TokenAuthStrategy
from httpx_aiohttp import AiohttpTransport

from libs.config import Settings
from services.executor.github.retries import retry_decision


class KeptOpen(httpx.AsyncBaseTransport):
    """One connection pool for every GitHub call of the process.

    githubkit opens an httpx client per call and closes it after, which closes its transport:
    each call would pay for a new connection (and TLS handshake) and a new client's SSL context
    (about 20 ms of CPU). This transport outlives those clients; it goes with the process.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.transport.handle_async_request(request)
        except httpx.ConnectTimeout as exc:
            # httpx-aiohttp reports a refused connection as a connect timeout: say what it was.
            if isinstance(exc.__cause__, aiohttp.ClientConnectorError) and not isinstance(
                exc.__cause__, aiohttp.ServerTimeoutError
            ):
                raise httpx.ConnectError(str(exc.__cause__), request=request) from exc.__cause__
            raise

    async def aclose(self) -> None:
        pass  # githubkit's per-call clients close this; the pool stays for the next call

    async def close(self) -> None:
        await self.transport.aclose()


def transport_for(api_url: str) -> httpx.AsyncBaseTransport:
    # aiohttp under httpx's interface: a fraction of httpcore's per-request CPU, which was most of
    # the executor's time spent on pull requests. It reads HTTPS_PROXY / NO_PROXY only for the
    # transports httpx builds itself, so the proxy is taken from the environment here.
    url = httpx.URL(api_url)
    proxy = None if urllib.request.proxy_bypass(url.host) else urllib.request.getproxies().get(url.scheme)
    return AiohttpTransport(proxy=httpx.Proxy(proxy) if proxy else None)


def github_client(settings: Settings) -> GitHub[TokenAuthStrategy] | None:
    """githubkit's client for `GITHUB_API_URL` with `GITHUB_TOKEN`; None without a token."""
    if not settings.github_token:
        return None
    return GitHub(
        TokenAuthStrategy(settings.github_token),
        base_url=settings.github_api_url,
        timeout=settings.github_timeout_s,
        # Only writes, and reads that must be fresh: a cached list of pull requests could hide
        # the one opened a moment ago.
        http_cache=False,
        auto_retry=retry_decision,
        async_transport=KeptOpen(transport_for(settings.github_api_url)),
    )


async def close_github_client(github: GitHub[Any] | None) -> None:
    """Close the connections `github_client` keeps open (when the service stops)."""
    transport = github.config.async_transport if github is not None else None
    if isinstance(transport, KeptOpen):
        await transport.close()
