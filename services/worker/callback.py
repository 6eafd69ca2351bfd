"""The report the worker sends when it is done: `POST` to the callback URL it was given, with its
callback token, saying how the run ended.

Tried again with backoff while the receiver cannot be reached or fails (5xx); a 2xx or a 4xx is
its answer, and the worker stops there (a 4xx is logged: the report will not be taken as sent)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import aiohttp
import msgspec

log = logging.getLogger(__name__)

SUCCEEDED, FAILED = "succeeded", "failed"
# Waits between tries: five tries over about 15 s, as long as a stopping machine is given.
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0)
TIMEOUT_S = 10.0


class Metadata(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    machine_id: str | None
    model_calls: int
    tool_calls: int
    input_tokens: int
    output_tokens: int


class Report(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    task_id: str | None
    run_id: str | None
    status: str  # SUCCEEDED | FAILED
    pr_url: str | None = None  # the worker opens no pull request: the product does, on approval
    error: str | None
    metadata: Metadata


async def send_report(
    http: aiohttp.ClientSession,
    url: str,
    token: str,
    report: Report,
    delays: Sequence[float] = RETRY_DELAYS_S,
) -> int | None:
    """Sends `report`; the status it was last answered with, None when it never was."""
    body = msgspec.json.encode(report)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status: int | None = None
    for attempt, delay in enumerate([*delays, None], start=1):
        try:
            async with http.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=TIMEOUT_S)
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("callback: try %d could not reach the receiver (%s)", attempt, type(exc).__name__)
        else:
            if status < 300:
                log.info("callback: the %s report was taken (HTTP %d)", report.status, status)
                return status
            if status == 409:
                log.warning("callback: refused (HTTP 409): a different report of this run was recorded already")
                return status
            if status < 500:
                log.warning("callback: refused (HTTP %d): the report was not taken", status)
                return status
            log.warning("callback: try %d failed (HTTP %d)", attempt, status)
        if delay is not None:
            await asyncio.sleep(delay)
    log.error("callback: the report could not be sent after %d tries", len(delays) + 1)
    return status
