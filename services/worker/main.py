"""The worker's entry point (`orchestrator-worker`): wiring only.

Reads its configuration, claims one run, works it, reports the end to the callback URL when it
has one, and exits: 0 when the run succeeded (the server's checks passed), 1 otherwise, 2 when
its configuration cannot be used. SIGTERM or SIGINT while it works gives the run back and exits
at once (1), without a callback: the run is back in the queue, not ended."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

import aiohttp

from libs.llm.providers import ProviderAccess, Providers
from libs.observability.logs import RedactSecrets, setup_logging
from services.worker.agent_api import AgentApi
from services.worker.callback import FAILED, SUCCEEDED, Metadata, Report, send_report
from services.worker.claiming import NotClaimed, claim
from services.worker.config import ConfigError, WorkerConfig, load_config
from services.worker.run import Ended, work

log = logging.getLogger(__name__)

SUCCESS, FAILURE, BAD_CONFIG = 0, 1, 2


async def one_run(config: WorkerConfig, api: AgentApi, providers: Providers) -> Ended:
    try:
        claimed = await claim(api, config)
    except NotClaimed as exc:
        log.error("%s", exc)
        return Ended(succeeded=False, run_id=config.run_id, task_id=config.task_id, error=str(exc))
    return await work(api, providers, claimed, config.lease_ttl_s, config.max_turns)


def report_of(config: WorkerConfig, ended: Ended) -> Report:
    return Report(
        # The task the worker was started for, or else the one whose run it claimed.
        task_id=config.task_id or ended.task_id,
        run_id=ended.run_id,
        status=SUCCEEDED if ended.succeeded else FAILED,
        error=ended.error,
        metadata=Metadata(
            machine_id=config.machine_id,
            model_calls=ended.model_calls,
            tool_calls=ended.tool_calls,
            input_tokens=ended.input_tokens,
            output_tokens=ended.output_tokens,
        ),
    )


async def serve(config: WorkerConfig) -> int:
    providers = Providers(
        ProviderAccess(
            anthropic_base_url=config.anthropic_base_url,
            anthropic_api_key=config.anthropic_api_key,
            openai_base_url=config.openai_base_url,
            openai_api_key=config.openai_api_key,
        )
    )
    async with aiohttp.ClientSession() as http:
        api = AgentApi(http, config.agent_url, config.session_token)
        running = asyncio.create_task(one_run(config, api, providers))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, running.cancel)
        try:
            await asyncio.wait({running})
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await providers.close()
        if running.cancelled():
            log.warning("stopped by a signal")
            return FAILURE
        ended = running.result()
        if config.callback_url and config.callback_token:
            await send_report(http, config.callback_url, config.callback_token, report_of(config, ended))
    log.info("done: %s", "succeeded" if ended.succeeded else f"failed: {ended.error}")
    return SUCCESS if ended.succeeded else FAILURE


def main() -> None:
    try:
        config = load_config(os.environ)
    except ConfigError as exc:
        print(f"orchestrator-worker: {exc}", file=sys.stderr)
        raise SystemExit(BAD_CONFIG) from None
    setup_logging("worker", config.log_level)
    # The worker's own secrets (the session and callback tokens) masked too, whatever logs them.
    for handler in logging.getLogger().handlers:
        for found in handler.filters:
            if isinstance(found, RedactSecrets):
                found.secrets = [*found.secrets, *config.secrets]
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    log.info("starting: %r", config)
    raise SystemExit(asyncio.run(serve(config)))
