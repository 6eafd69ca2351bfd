"""The debug dump: everything the read models hold for one workspace, and the runs, gates and
ledger totals its events show."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from contracts.events import public_payload
from libs.readmodels.positions import snapshot
from libs.readmodels.schema import TASK_STATE
from libs.readmodels.task_view import ZERO_COST, add_charge
from libs.readmodels.workspace_reads import workspace, workspace_keys

DUMP_EVENT_LIMIT = 10_000


async def debug_dump(pool: AsyncConnectionPool, workspace_id: str) -> dict[str, Any]:
    """Everything the read models hold for one workspace, read in one snapshot."""
    async with snapshot(pool) as (conn, position):
        found, keys = await workspace(conn, workspace_id), await workspace_keys(conn, workspace_id)
        cur = await conn.execute(
            f"SELECT {TASK_STATE} FROM rm_tasks WHERE workspace_id = %s ORDER BY created_at, task_id", (workspace_id,)
        )
        tasks = [r[0] for r in await cur.fetchall()]
        cur = await conn.execute(
            "SELECT seq, type, aggregate_id, occurred_at, payload FROM rm_feed WHERE workspace_id = %s "
            "ORDER BY seq DESC LIMIT %s",
            (workspace_id, DUMP_EVENT_LIMIT + 1),
        )
        rows = await cur.fetchall()
        cur = await conn.execute(
            "SELECT run_id::text, seq, task_id::text, subtask_id, occurred_at, model, input_tokens, output_tokens, "
            "cache_read_tokens, cache_write_tokens, cost_usd, cpu_time_ms, subrequests, priced, estimated "
            "FROM rm_charges WHERE workspace_id = %s ORDER BY seq",
            (workspace_id,),
        )
        charge_columns = [c.name for c in cur.description or []]
        charges = [dict(zip(charge_columns, r, strict=True)) for r in await cur.fetchall()]
    events = [
        {"seq": r[0], "type": r[1], "aggregateId": r[2], "occurredAt": r[3], "payload": public_payload(r[1], r[4])}
        for r in reversed(rows[:DUMP_EVENT_LIMIT])
    ]
    return {
        "workspaceID": workspace_id,
        "projectorPosition": position,
        "workspace": found,
        "keys": keys,
        "tasks": tasks,
        "runs": runs_of(events),
        "gates": gates_of(events),
        "ledger": ledger_totals(charges),
        "events": events,
        "eventsTruncated": len(rows) > DUMP_EVENT_LIMIT,
        "costRecords": charges,
    }


def runs_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run (agent session) the events show: where it stands and what it did."""
    runs: dict[str, dict[str, Any]] = {}
    for e in events:
        kind, p = e["type"], e["payload"]
        if not kind.startswith("run."):
            continue
        run = runs.setdefault(
            e["aggregateId"],
            {"runId": e["aggregateId"], "taskId": p.get("task_id"), "subtaskId": p.get("subtask_id"), "modelCalls": 0},
        )
        run.setdefault("toolCalls", 0)
        if kind == "run.started":
            run.update(status="started", attempt=p["attempt"], agentType=p["agent_type"], model=p["model"])
            if p.get("session_id"):
                run.update(sessionId=p["session_id"], leaseUntil=p["lease_until"])
        elif kind == "run.model_called":
            run["modelCalls"] += 1
        elif kind == "run.tool_called":
            run["toolCalls"] += 1
        elif kind in ("run.succeeded", "run.failed", "run.budget_stopped", "run.lease_expired", "run.released"):
            run["status"] = kind.removeprefix("run.")
            if kind in ("run.failed", "run.lease_expired"):
                run["error"] = p["error"]
            if kind == "run.released":
                run["releaseReason"] = p["reason"]
    return list(runs.values())


def gates_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gates: dict[str, dict[str, Any]] = {}
    for e in events:
        if e["type"] == "gate.opened":
            gates[e["aggregateId"]] = {"gateId": e["aggregateId"], "taskId": e["payload"]["task_id"], "open": True}
        elif e["type"] == "gate.decided" and e["aggregateId"] in gates:
            gates[e["aggregateId"]].update(open=False, decision=e["payload"]["decision"])
        elif e["type"] == "question_gate.asked":
            p = e["payload"]
            gates[e["aggregateId"]] = {
                "gateId": e["aggregateId"],
                "taskId": p["task_id"],
                "questionId": p["question_id"],
                "open": True,
                "expiresAt": p["expires_at"],
            }
        elif e["type"] in ("question_gate.answered", "question_gate.expired") and e["aggregateId"] in gates:
            gates[e["aggregateId"]].update(open=False, outcome=e["type"].removeprefix("question_gate."))
    return list(gates.values())


def ledger_totals(charges: list[dict[str, Any]]) -> dict[str, Any]:
    total = dict(ZERO_COST)
    for charge in charges:
        add_charge(total, charge)
    return {**total, "unpricedCharges": sum(1 for c in charges if not c["priced"])}
