"""Cost-ledger handlers: each finished Run is priced and charged to its task's ledger, once."""

from __future__ import annotations

from typing import Any, NamedTuple
from uuid import UUID

from contracts.events import Event, EventEnvelope, typed
from contracts.payloads.run import RunBudgetStopped, RunFailed, RunReleased, RunSucceeded
from contracts.payloads.task import TaskPlanned
from libs.domain.base import derived_id
from libs.domain.ledger import Ledger, ledger_id
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable

PLANNING = "plan"  # the subtask id a drafted plan's model call is charged to


class Charge(NamedTuple):
    """One priced model usage: a run's, or a drafted plan's."""

    charge_id: str
    task_id: str
    subtask_id: str
    model: str
    usage: dict[str, int]
    duration_ms: int
    subrequests: int
    estimated: bool  # the usage includes an estimate (an interrupted run's call in flight)


# The events that charge a ledger: a run's end, and a drafted plan's model call.
CHARGED = frozenset(
    {"run.succeeded", "run.failed", "run.budget_stopped", "run.lease_expired", "run.released", "task.planned"}
)


def _charge_of(e: Event[Any]) -> Charge | None:
    p = e.payload
    if isinstance(p, RunSucceeded | RunFailed | RunBudgetStopped | RunReleased):
        estimated = isinstance(p, RunFailed) and bool(p.estimated_usage)
        return Charge(
            e.aggregate_id, p.task_id, p.subtask_id, p.model, p.usage, p.duration_ms, p.subrequests, estimated
        )
    if isinstance(p, TaskPlanned) and p.usage is not None:
        planned = str(derived_id(PLANNING, e.aggregate_id))
        return Charge(planned, e.aggregate_id, PLANNING, p.model, p.usage, p.duration_ms, 1, False)
    return None


def on_events(events: list[EventEnvelope], store: EventStore, prices: PriceTable) -> list[Ledger]:
    # Only the events that charge are decoded: the consumer hands over envelopes.
    charges = [(e.workspace_id, c) for e in events if e.type in CHARGED and (c := _charge_of(typed(e))) is not None]
    ledgers: dict[UUID, Ledger] = store.load_many(ledger_id(c.task_id) for _, c in charges)
    for workspace_id, c in charges:
        lid = ledger_id(c.task_id)
        ledger = ledgers.get(lid)
        if ledger is None:
            ledger = ledgers[lid] = Ledger.open(workspace_id, c.task_id)
        price = prices.price(c.model, c.usage)
        ledger.charge(
            run_id=c.charge_id,
            subtask_id=c.subtask_id,
            model=c.model,
            input_tokens=c.usage.get("input_tokens", 0),
            output_tokens=c.usage.get("output_tokens", 0),
            cache_read_tokens=c.usage.get("cache_read_tokens", 0),
            cache_write_tokens=c.usage.get("cache_write_tokens", 0),
            cost_usd=price.usd,
            cpu_time_ms=c.duration_ms,
            subrequests=c.subrequests,
            priced=price.known,
            estimated=c.estimated,
        )
    return [ledger for ledger in ledgers.values() if ledger.pending_events]
