"""`rm_run_usage`: what the runs not charged yet have used so far, which budget checks count,
so runs going on at once see each other's calls before the cost ledger charges them."""

from __future__ import annotations

from typing import Any

import psycopg

from contracts.events import Event
from contracts.payloads.ledger import LedgerCharged
from contracts.payloads.run import (
    RunBudgetStopped,
    RunFailed,
    RunModelCalled,
    RunReleased,
    RunStarted,
    RunSucceeded,
)
from libs.readmodels.codec import as_json as _json

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
# A run's end: its usage is the run's whole (what its recorded calls added up to, or, for an
# agent session's run, what the session reported).
RUN_ENDS = RunSucceeded | RunFailed | RunBudgetStopped | RunReleased


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """Runs' usage until the ledger charges them: a row from `run.started`, each saved model
    call added to it, set to the run's total by its end (an agent session's run records no
    calls: its end is the first the read models hear of its usage), gone with the run's
    `ledger.charged` (then `rm_charges` holds it)."""
    started: dict[str, dict[str, Any]] = {}
    used: dict[str, dict[str, int]] = {}
    totals: dict[str, dict[str, int]] = {}  # ended runs of earlier batches: their whole usage
    charged: list[str] = []
    for e in events:
        p = e.payload
        if isinstance(p, RunStarted):
            started[e.aggregate_id] = {"run_id": e.aggregate_id, "workspace_id": e.workspace_id}
            started[e.aggregate_id] |= {"task_id": p.task_id, "model": p.model} | dict.fromkeys(USAGE_KEYS, 0)
        elif isinstance(p, RunModelCalled):
            row = started.get(e.aggregate_id) or used.setdefault(e.aggregate_id, dict.fromkeys(USAGE_KEYS, 0))
            for key in USAGE_KEYS:
                row[key] += int(p.usage.get(key, 0))
        elif isinstance(p, RUN_ENDS):
            total = {key: int(p.usage.get(key, 0)) for key in USAGE_KEYS}
            if e.aggregate_id in started:
                started[e.aggregate_id] |= total | {"model": p.model}
            else:
                used.pop(e.aggregate_id, None)
                totals[e.aggregate_id] = total | {"model": p.model}  # type: ignore[dict-item]
        elif isinstance(p, LedgerCharged):
            charged.append(p.run_id)
    # Charged in this batch: written and deleted at once would be wasted work.
    for run_id in charged:
        started.pop(run_id, None)
        used.pop(run_id, None)
        totals.pop(run_id, None)
    if started:
        cur.execute(
            "INSERT INTO rm_run_usage SELECT * FROM json_populate_recordset(NULL::rm_run_usage, %s) "
            "ON CONFLICT (run_id) DO NOTHING",
            (_json(list(started.values())),),
        )
    # The calls of runs started in an earlier batch are added; the ends of such runs set their
    # whole usage: one statement for both.
    changes = [{"run_id": r, "total": False, "model": None} | row for r, row in used.items()]
    changes += [{"run_id": r, "total": True} | row for r, row in totals.items()]
    if changes:
        cur.execute(
            "UPDATE rm_run_usage r SET model = coalesce(u.model, r.model), "
            "input_tokens = u.input_tokens + CASE WHEN u.total THEN 0 ELSE r.input_tokens END, "
            "output_tokens = u.output_tokens + CASE WHEN u.total THEN 0 ELSE r.output_tokens END, "
            "cache_read_tokens = u.cache_read_tokens + CASE WHEN u.total THEN 0 ELSE r.cache_read_tokens END, "
            "cache_write_tokens = u.cache_write_tokens + CASE WHEN u.total THEN 0 ELSE r.cache_write_tokens END "
            "FROM json_to_recordset(%s) AS u(run_id uuid, total boolean, model text, input_tokens bigint, "
            "output_tokens bigint, cache_read_tokens bigint, cache_write_tokens bigint) WHERE r.run_id = u.run_id",
            (_json(changes),),
        )
    if charged:
        cur.execute("DELETE FROM rm_run_usage WHERE run_id = ANY(%s::uuid[])", (charged,))
