"""Cost-ledger handlers: each finished Run is priced and charged to its task's ledger, once."""

from __future__ import annotations

from uuid import UUID

from contracts.events import EventEnvelope
from libs.domain.ledger import Ledger, ledger_id
from libs.eventstore.store import EventStore
from libs.pricing import PriceTable


def on_events(events: list[EventEnvelope], store: EventStore, prices: PriceTable) -> list[Ledger]:
    finished = [e for e in events if e.type in ("run.succeeded", "run.failed")]
    ledgers: dict[UUID, Ledger] = store.load_many(ledger_id(e.payload["task_id"]) for e in finished)
    for e in finished:
        p = e.payload
        lid = ledger_id(p["task_id"])
        ledger = ledgers.get(lid)
        if ledger is None:
            ledger = ledgers[lid] = Ledger.open(e.workspace_id, p["task_id"])
        usage = p["usage"]
        model = p["model"]
        price = prices.price(model, usage)
        ledger.charge(
            run_id=e.aggregate_id,
            subtask_id=p["subtask_id"],
            model=model,
            input_tokens=usage.get("input_tokens", 0),
            output_tokens=usage.get("output_tokens", 0),
            cache_read_tokens=usage.get("cache_read_tokens", 0),
            cache_write_tokens=usage.get("cache_write_tokens", 0),
            cost_usd=price.usd,
            cpu_time_ms=p.get("duration_ms", 0),
            subrequests=p.get("subrequests", 0),
            priced=price.known,
        )
    return [ledger for ledger in ledgers.values() if ledger.pending_events]
