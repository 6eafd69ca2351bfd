"""Run: one attempt of one subtask, owned by the executor."""

from __future__ import annotations

import hashlib
import secrets
from uuid import UUID

import msgspec

from contracts.payloads.run import (
    RunBudgetStopped,
    RunFailed,
    RunLeaseExpired,
    RunModelCalled,
    RunModelCallStarted,
    RunReleased,
    RunStarted,
    RunSucceeded,
    RunToolCalled,
)
from contracts.payloads.shapes import BudgetCap, RunOutput
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import IllegalTransition

STARTED, SUCCEEDED, FAILED, BUDGET_STOPPED = "started", "succeeded", "failed", "budget_stopped"
EXPIRED, RELEASED = "expired", "released"
INTERRUPTED = "the run was interrupted (its executor stopped)"
LEASE_EXPIRED = "the run's lease expired (its holder stopped heartbeating)"


def run_id_for(task_id: str, subtask_id: str, attempt: int, handover: int = 0) -> UUID:
    """A run's id, derived from what it runs: a second claim of the same run conflicts. A run
    given back (`handover`) is followed by a new run of the same attempt."""
    if handover:
        return derived_id("run", task_id, subtask_id, attempt, "handover", handover)
    return derived_id("run", task_id, subtask_id, attempt)


def claim_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_claim_token() -> str:
    """A claim's fencing token (`clm_...`): returned to the holder once, kept only as its hash."""
    return f"clm_{secrets.token_urlsafe(32)}"


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """Who claims a run, and for how long: the lease it will run under."""

    session_id: str | None  # None: the run itself is the session (the executor's runs)
    lease_until: int  # ms since the epoch
    lease_ttl_s: int
    token_hash: str
    dispatch_seq: int | None = None


class Run(WorkspaceAggregate):
    class Started(WorkspaceAggregate.Created):
        payload: RunStarted  # `retry_of`: a self-heal attempt's first line of the error it retries

    def __init__(self, workspace_id: str, payload: RunStarted) -> None:
        self.workspace_id = workspace_id
        self.task_id = payload.task_id
        self.subtask_id = payload.subtask_id
        self.agent_type = payload.agent_type
        self.attempt = payload.attempt
        self.provider = payload.provider
        self.model = payload.model
        self.status = STARTED
        self.session_id = payload.session_id  # None: a run started before leases
        self.lease_until = payload.lease_until
        self.lease_ttl_s = payload.lease_ttl_s
        self.claim_token_hash = payload.claim_token_hash
        self.handover = payload.handover
        self.dispatch_seq = payload.dispatch_seq
        self.previous_run_id = payload.previous_run_id
        self.first_call_estimate = payload.first_call_estimate
        self.error: str | None = None  # why it failed, expired or was given back
        self.model_calls = 0
        self.tool_calls = 0
        self.usage: dict[str, int] = {}  # what its recorded model calls used, summed
        # The model call started and not recorded yet (its turn, its estimated usage): the
        # provider may be paid for it, so a run found interrupted with one is charged its estimate.
        self.started_call: RunModelCallStarted | None = None

    @classmethod
    def start(
        cls,
        workspace_id: str,
        task_id: str,
        subtask_id: str,
        agent_type: str,
        attempt: int,
        provider: str,
        model: str,
        retry_of: str | None = None,
        claim: Claim | None = None,
        handover: int = 0,
        previous_run_id: str | None = None,
        first_call_estimate: dict[str, int] | None = None,
    ) -> Run:
        """The run's first event is its claim: the run exists only once someone holds it, under
        a lease, and a second claim of the same run conflicts on this very insert."""
        run_id = run_id_for(task_id, subtask_id, attempt, handover)
        started = RunStarted(
            task_id=task_id,
            subtask_id=subtask_id,
            agent_type=agent_type,
            attempt=attempt,
            provider=provider,
            model=model,
            retry_of=retry_of,
            session_id=None if claim is None else (claim.session_id or str(run_id)),
            lease_until=None if claim is None else claim.lease_until,
            lease_ttl_s=None if claim is None else claim.lease_ttl_s,
            claim_token_hash=None if claim is None else claim.token_hash,
            handover=handover,
            dispatch_seq=None if claim is None else claim.dispatch_seq,
            previous_run_id=previous_run_id,
            first_call_estimate=first_call_estimate,
        )
        return cls._create(cls.Started, id=run_id, workspace_id=workspace_id, payload=started)

    @property
    def internal(self) -> bool:
        """Held by the executor (its runs are their own sessions), not by an agent session."""
        return self.session_id is None or self.session_id == str(self.id)

    def fenced_by(self, token: str) -> bool:
        """Whether `token` is this run's claim token (compared in constant time)."""
        return self.claim_token_hash is not None and secrets.compare_digest(
            self.claim_token_hash, claim_token_hash(token)
        )

    def _about(self, model: str | None = None) -> dict[str, str]:
        """What every end and call of the run says of it: its task, subtask, agent and model
        (`model`: the one an agent session reports, when not the run's)."""
        return {
            "task_id": self.task_id,
            "subtask_id": self.subtask_id,
            "agent_type": self.agent_type,
            "provider": self.provider,
            "model": model or self.model,
        }

    def _require_started(self) -> None:
        if self.status != STARTED:
            raise IllegalTransition(f"run {self.id} already {self.status}")

    def succeed(
        self, output: RunOutput, usage: dict[str, int], duration_ms: int, subrequests: int, model: str | None = None
    ) -> None:
        """`model`: the one an agent session reports its calls used, when not the run's."""
        self._require_started()
        succeeded = RunSucceeded(
            **self._about(model),
            output=output,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            attempt=self.attempt,
        )
        self.emit(self.Succeeded, succeeded)

    class Succeeded(WorkspaceAggregate.Event):
        payload: RunSucceeded

        def apply(self, run: Run) -> None:
            run.status = SUCCEEDED

    def start_model_call(self, turn: int, estimated_usage: dict[str, int]) -> None:
        """Model call `turn` (the second or a later one) is about to be made: saved before it is,
        with the records of the turn before, so that a call paid for and never recorded is on
        record anyway. The first call needs no marker: the run's start is saved before it."""
        self._require_started()
        self.emit(
            self.ModelCallStarted,
            RunModelCallStarted(
                task_id=self.task_id, subtask_id=self.subtask_id, turn=turn, estimated_usage=estimated_usage
            ),
        )

    class ModelCallStarted(WorkspaceAggregate.Event):
        payload: RunModelCallStarted

        def apply(self, run: Run) -> None:
            run.started_call = self.payload

    def record_model_call(
        self,
        turn: int,
        ok: bool,
        duration_ms: int,
        usage: dict[str, int],
        stop_reason: str | None,
        tool_calls: int,
        error: str | None,
    ) -> None:
        self._require_started()
        called = RunModelCalled(
            **self._about(),
            turn=turn,
            status="ok" if ok else "error",
            duration_ms=duration_ms,
            usage=usage,
            stop_reason=stop_reason,
            tool_calls=tool_calls,
            error=error,
        )
        self.emit(self.ModelCalled, called)

    class ModelCalled(WorkspaceAggregate.Event):
        payload: RunModelCalled

        def apply(self, run: Run) -> None:
            run.model_calls += 1
            run.usage = added(run.usage, self.payload.usage)
            if run.started_call is not None and run.started_call.turn <= self.payload.turn:
                run.started_call = None

    def record_tool_call(
        self, call_id: str, tool: str, ok: bool, title: str, target: str | None, duration_ms: int, error: str | None
    ) -> None:
        self._require_started()
        called = RunToolCalled(
            task_id=self.task_id,
            subtask_id=self.subtask_id,
            agent_type=self.agent_type,
            call_id=call_id,
            tool=tool,
            status="ok" if ok else "error",
            title=title,
            target=target,
            duration_ms=duration_ms,
            error=error,
        )
        self.emit(self.ToolCalled, called)

    class ToolCalled(WorkspaceAggregate.Event):
        payload: RunToolCalled

        def apply(self, run: Run) -> None:
            run.tool_calls += 1

    def fail(
        self,
        error: str,
        usage: dict[str, int],
        duration_ms: int,
        subrequests: int,
        retryable: bool = False,
        output: RunOutput | None = None,
        estimated_usage: dict[str, int] | None = None,
        model: str | None = None,
    ) -> None:
        """`retryable`: another attempt may succeed (a check failed, a timeout); `output`: the
        attempt's changes, which the next attempt starts from; `estimated_usage`: the part of
        `usage` that is an estimate, not a provider's count (an interrupted model call's);
        `model`: the one an agent session reports its calls used, when not the run's."""
        self._require_started()
        failed = RunFailed(
            **self._about(model),
            error=error,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            attempt=self.attempt,
            retryable=retryable,
            output=output,
            estimated_usage=estimated_usage,
        )
        self.emit(self.Failed, failed)

    def interrupt(self, first_call: dict[str, int] | None) -> None:
        """Fails a run whose executor stopped mid-run (found unfinished when its dispatch comes
        back), retryable. It is charged for its recorded calls, and for the model call it had
        started and not recorded (in flight when the executor stopped, or returned and not yet
        saved) at that call's estimate: the provider may have been paid for it, and nobody here
        can know its usage. A run with no recorded call had started its first one, whose
        estimate is `first_call` (worked out from its dispatch: no marker records it)."""
        in_flight = first_call if self.model_calls == 0 else self.in_flight()
        self._fail_with(INTERRUPTED, 0, in_flight, retryable=True)

    def in_flight(self) -> dict[str, int] | None:
        """The estimate of the model call it marked as started and has not recorded, if any."""
        return self.started_call.estimated_usage if self.started_call is not None else None

    def cancel(self, reason: str, duration_ms: int, in_flight: dict[str, int] | None) -> None:
        """Fails a run whose task was stopped under it (its workspace purged), for good: it is
        charged for its recorded calls, and for the one it had in flight (`in_flight`, that
        call's estimate; None when it was not calling the model), which the provider may have
        been paid for."""
        self._fail_with(reason, duration_ms, in_flight, retryable=False)

    def _fail_with(self, reason: str, duration_ms: int, in_flight: dict[str, int] | None, retryable: bool) -> None:
        subrequests = self.model_calls + self.tool_calls + (1 if in_flight else 0)
        usage = added(self.usage, in_flight or {})
        self.fail(reason, usage, duration_ms, subrequests, retryable=retryable, estimated_usage=in_flight or None)

    def stop_for_budget(
        self,
        cap: BudgetCap,
        on_exceeded: str,
        usage: dict[str, int],
        duration_ms: int,
        subrequests: int,
        output: RunOutput | None,
    ) -> None:
        """Stopped before a model call that would cross a budget cap: `cap` says which, its
        limit, what was spent and what the call could have cost; `on_exceeded` what the task
        does (pause or fail); `usage` is what the run spent before, which is charged like any run's."""
        self._require_started()
        stopped = RunBudgetStopped(
            **self._about(),
            attempt=self.attempt,
            cap=cap,
            on_exceeded=on_exceeded,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
            output=output,
        )
        self.emit(self.BudgetStopped, stopped)

    class BudgetStopped(WorkspaceAggregate.Event):
        payload: RunBudgetStopped

        def apply(self, run: Run) -> None:
            run.status = BUDGET_STOPPED

    class Failed(WorkspaceAggregate.Event):
        payload: RunFailed

        def apply(self, run: Run) -> None:
            run.status = FAILED
            run.error = self.payload.error

    def expire(self, lease_until: int) -> None:
        """Its lease ran out (`lease_until`, heartbeats included) with the run unfinished: it
        fails, retryable, charged as an interrupted run is (its recorded calls, and at its
        estimate the call it had started and not recorded, which the provider may have been
        paid for). An agent session's run records no calls: what it spent is its own to report,
        on `complete`, `fail` or `release`, and a lost lease loses the report."""
        self._require_started()
        in_flight = self.in_flight()
        if in_flight is None and self.model_calls == 0:
            in_flight = self.first_call_estimate
        subrequests = self.model_calls + self.tool_calls + (1 if in_flight else 0)
        expired = RunLeaseExpired(
            **self._about(),
            error=LEASE_EXPIRED,
            usage=added(self.usage, in_flight or {}),
            subrequests=subrequests,
            attempt=self.attempt,
            retryable=True,
            estimated_usage=in_flight or None,
            session_id=self.session_id or str(self.id),
            lease_until=lease_until,
        )
        self.emit(self.LeaseExpired, expired)

    class LeaseExpired(WorkspaceAggregate.Event):
        payload: RunLeaseExpired

        def apply(self, run: Run) -> None:
            run.status = EXPIRED
            run.error = self.payload.error

    def release(
        self,
        reason: str | None,
        usage: dict[str, int],
        duration_ms: int,
        subrequests: int = 0,
        model: str | None = None,
    ) -> None:
        """The holder gives the run back unfinished: the same attempt goes back to the queue.
        `usage` and `subrequests`: what it reports it spent (with `model`) before it did."""
        self._require_started()
        released = RunReleased(
            **self._about(model),
            attempt=self.attempt,
            handover=self.handover,
            session_id=self.session_id or str(self.id),
            reason=reason,
            usage=usage,
            duration_ms=duration_ms,
            subrequests=subrequests,
        )
        self.emit(self.Released, released)

    class Released(WorkspaceAggregate.Event):
        payload: RunReleased

        def apply(self, run: Run) -> None:
            run.status = RELEASED
            run.error = self.payload.reason


def added(usage: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    """Two usages summed, token kind by token kind."""
    total = dict(usage)
    for key, tokens in more.items():
        total[key] = total.get(key, 0) + tokens
    return total
