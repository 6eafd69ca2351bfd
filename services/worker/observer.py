"""What the worker does while its agent works: a log line per model call and per tool call (never
a file's content nor a secret), and the lease kept by heartbeats from a background task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from contracts.agent_tasks import Usage as RunUsage
from contracts.payloads.shapes import BudgetCap
from libs.agent.loop import ModelCall
from libs.agent.tools import ToolResult
from libs.llm.conversation import Usage
from services.worker.agent import usage_of
from services.worker.agent_api import AgentApi, Refused, Unavailable

log = logging.getLogger(__name__)


class RunObserver:
    """The agent loop's observer for one run (`libs.agent.loop.Observer`); it counts the calls and
    what they used, for a run that ends before the loop returns its outcome."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.model_calls = 0
        self.tool_calls = 0
        self.usage = Usage()
        self.model = ""  # known once the agent is set up ("": the session's, as the server reads it)

    def used(self) -> RunUsage:
        """What the calls so far used, as the calls that end a run report it."""
        return usage_of(self.usage, self.model_calls + self.tool_calls, self.model)

    def model_called(self, call: ModelCall) -> None:
        self.model_calls += 1
        self.usage = self.usage + call.usage
        u = call.usage
        if call.ok:
            log.info(
                "run %s: model call %d in %d ms (%s): %d tokens in, %d out, %d tool call(s)",
                *(self.run_id, call.turn, call.duration_ms, call.stop_reason, u.input_tokens, u.output_tokens),
                call.tool_calls,
            )
        else:
            log.warning("run %s: model call %d failed: %s", self.run_id, call.turn, call.error)

    def tool_called(self, call_id: str, tool: str, result: ToolResult) -> None:
        self.tool_calls += 1
        log.info("run %s: %s %s: %s", self.run_id, tool, "ok" if result.ok else "failed", result.title)

    async def turn_done(self, finished: bool) -> None:
        return None

    async def ask_human(self, call_id: str, arguments: Any) -> ToolResult:
        # Never offered (no person is reachable from a worker); the loop refuses the call before.
        return ToolResult("No human can be asked in this run: decide yourself.", False, "ask_human refused")

    async def before_model_call(self, prompt_chars: Callable[[], int], max_tokens: int) -> BudgetCap | None:
        # Budget caps are the server's: it checks them at the claim and prices the usage reported.
        return None


async def keep_lease(api: AgentApi, run_id: str, claim_token: str, ttl_s: int, lost: asyncio.Event) -> None:
    """Heartbeats every third of the lease's length, so two can be missed before it passes.
    Refused, the lease is gone (it passed, or the run was stopped): `lost` is set and this ends."""
    while True:
        await asyncio.sleep(ttl_s / 3)
        try:
            await api.heartbeat(run_id, claim_token)
        except Unavailable as exc:
            log.warning("run %s: a heartbeat failed (%s); trying again", run_id, exc)
        except Refused as exc:
            log.error("run %s: the lease is lost (%s: %s)", run_id, exc.code, exc.message)
            lost.set()
            return
