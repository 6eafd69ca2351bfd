"""One claimed run, worked and ended: its files fetched, the agent run on them while the lease is
heartbeated, then `complete` (the server's checks judge the files) or `fail`.

Stopped while it holds the lease (the task running it is cancelled: a machine being stopped),
it gives the run back (`release`, no attempt counted) if it can within a few seconds."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec

from contracts.agent_tasks import Complete, Fail, Release
from libs.agent.loop import AgentSpec, Model, Outcome, run_agent
from services.worker.agent import UnknownAgentType, agent_spec, result_of, usage_of
from services.worker.agent_api import AgentApi, Claim, LeaseAnswer, Refused, Unavailable
from services.worker.inputs import starting_repository
from services.worker.observer import RunObserver, keep_lease

log = logging.getLogger(__name__)

STOPPED = "the worker was stopped before the run ended"
RELEASE_TIMEOUT_S = 5.0  # a stopping machine is given a few seconds
END_TRIES_DELAYS_S = (1.0, 2.0, 4.0)
MAX_ERROR_CHARS = 20_000  # what `fail` takes


class Ended(msgspec.Struct, frozen=True, kw_only=True):
    """How the worker's run ended, as the server recorded it."""

    succeeded: bool
    run_id: str | None
    task_id: str | None
    error: str | None = None
    model_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


async def work(api: AgentApi, model: Model, claim: Claim, lease_ttl_s: int, max_turns: int) -> Ended:
    run_id = claim.run.id
    observer = RunObserver(run_id)
    lost = asyncio.Event()
    beating = asyncio.create_task(keep_lease(api, run_id, claim.claim_token, lease_ttl_s, lost))
    agent = asyncio.create_task(_attempt(api, model, claim, max_turns, observer))
    lease_gone = asyncio.create_task(lost.wait())
    try:
        await asyncio.wait({agent, lease_gone}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        beating.cancel()
        agent.cancel()
        await _release(api, claim, observer)
        raise
    finally:
        beating.cancel()
        lease_gone.cancel()

    def ended(succeeded: bool, error: str | None) -> Ended:
        u = observer.usage
        return Ended(
            succeeded=succeeded,
            run_id=run_id,
            task_id=claim.task.id,
            error=error,
            model_calls=observer.model_calls,
            tool_calls=observer.tool_calls,
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
        )

    if not agent.done():
        agent.cancel()
        return ended(False, "the lease was lost while the agent worked: the run is no longer this worker's")
    try:
        outcome, spec = agent.result()
    except Exception as exc:
        error, retryable = _trouble(run_id, exc)
        body = Fail(claim_token=claim.claim_token, error=error, retryable=retryable, usage=observer.used())
        answer = await _end(lambda: api.fail(run_id, body))
        return ended(False, error if isinstance(answer, LeaseAnswer) else answer)
    if outcome.error is not None:
        body = Fail(
            claim_token=claim.claim_token,
            error=outcome.error[:MAX_ERROR_CHARS],
            retryable=outcome.retryable,
            usage=usage_of(outcome.usage, outcome.model_calls + outcome.tool_calls, spec.model),
        )
        answer = await _end(lambda: api.fail(run_id, body))
        log.warning("run %s: failed: %s", run_id, outcome.error)
        return ended(False, outcome.error if isinstance(answer, LeaseAnswer) else answer)
    result = result_of(outcome, spec.model)
    answer = await _end(lambda: api.complete(run_id, Complete(claim_token=claim.claim_token, result=result)))
    if not isinstance(answer, LeaseAnswer):
        return ended(False, answer)
    if answer.run.status == "completed":
        log.info(
            "run %s: completed: %d file(s) changed, %d deleted", run_id, len(result.files), len(result.deleted_files)
        )
        return ended(True, None)
    # The server's self-heal checks failed it (its error lists the problems).
    log.warning("run %s: %s by the server: %s", run_id, answer.run.status, answer.run.error)
    return ended(False, answer.run.error or f"the run is {answer.run.status}")


async def _attempt(
    api: AgentApi, model: Model, claim: Claim, max_turns: int, observer: RunObserver
) -> tuple[Outcome, AgentSpec]:
    run = claim.input
    log.info(
        "run %s: claimed: task %s, %s subtask %s, attempt %d, %d file(s)",
        *(claim.run.id, claim.task.id, run.agent_type, run.subtask_id, run.attempt, len(run.files)),
    )
    repo = await starting_repository(api, run)
    spec = agent_spec(run, repo, max_turns)
    observer.model = spec.model
    log.info(
        "run %s: the agent works with %s model %s (at most %d model calls)",
        claim.run.id,
        spec.provider,
        spec.model,
        spec.max_turns,
    )
    return await run_agent(model, spec, repo, observer), spec


def _trouble(run_id: str, exc: Exception) -> tuple[str, bool]:
    """What failed the worker itself (not the agent), as `fail` reports it, and whether another
    attempt may fare better."""
    if isinstance(exc, UnknownAgentType):
        return str(exc), False
    if isinstance(exc, (Refused, Unavailable)):
        log.error("run %s: its files could not be fetched: %s", run_id, exc)
        return f"the worker could not fetch the run's files: {exc}"[:MAX_ERROR_CHARS], True
    # Its message could hold anything: the log has the traceback, the run its kind only.
    log.exception("run %s: the worker failed", run_id)
    return f"the worker failed unexpectedly ({type(exc).__name__})", True


async def _end(call: Callable[[], Awaitable[LeaseAnswer]]) -> LeaseAnswer | str:
    """The call that ends the run, tried again while the server is out of reach (a repeated end
    is answered as the first was); the answer, or why the run's end could not be recorded."""
    for delay in (*END_TRIES_DELAYS_S, None):
        try:
            return await call()
        except Refused as exc:
            log.error("the run's end was refused: %s: %s", exc.code, exc.message)
            return f"the run's end was refused: {exc.code}: {exc.message}"
        except Unavailable as exc:
            if delay is None:
                log.error("the run's end could not be recorded: %s", exc)
                return f"the run's end could not be recorded: {exc}"
            log.warning("the run's end could not be sent (%s); trying again in %g s", exc, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _release(api: AgentApi, claim: Claim, observer: RunObserver) -> None:
    """Gives the run back (another worker takes the same attempt), charged what it used."""
    body = Release(claim_token=claim.claim_token, reason=STOPPED, usage=observer.used())
    try:
        answer = await asyncio.wait_for(api.release(claim.run.id, body), RELEASE_TIMEOUT_S)
    except (Refused, Unavailable, TimeoutError) as exc:
        log.warning("run %s: stopped; its lease could not be released (%s): it expires on its own", claim.run.id, exc)
        return
    log.warning("run %s: stopped; the run was released (%s)", claim.run.id, answer.lease.status)
