"""Queries on the read models, for the gateway and the stream service (async psycopg)."""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg.sql import SQL, Composable, Composed, Identifier
from psycopg_pool import AsyncConnectionPool

from contracts.events import public_payload
from libs.eventstore.store import EVENTS_TABLE
from libs.readmodels import toolcalls
from libs.readmodels.schema import PROJECTOR
from libs.readmodels.tasks import ZERO_COST, add_charge
from libs.readmodels.toolcalls import ToolCallFilter


@functools.cache
def _select_task_column(column: str) -> bytes:
    # Rendered once per column: psycopg would render the composed query on every execute.
    return SQL("SELECT {} FROM rm_tasks WHERE task_id = %s AND workspace_id = %s").format(Identifier(column)).as_bytes()


async def _task_column(pool: AsyncConnectionPool, column: str, workspace_id: str, task_id: str) -> Any:
    async with pool.connection() as conn:
        cur = await conn.execute(_select_task_column(column), (task_id, workspace_id), prepare=True)
        row = await cur.fetchone()
    return row[0] if row else None


async def task_state(pool: AsyncConnectionPool, workspace_id: str, task_id: str) -> dict[str, Any] | None:
    return await _task_column(pool, "state", workspace_id, task_id)


async def task_status(pool: AsyncConnectionPool, workspace_id: str, task_id: str) -> str | None:
    """Only the status: the review check needs no full state (which carries the files)."""
    return await _task_column(pool, "status", workspace_id, task_id)


async def log_head(pool: AsyncConnectionPool) -> int:
    """The event store's highest seq."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(Identifier(EVENTS_TABLE))
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def costs(pool: AsyncConnectionPool, workspace_id: str, since_ms: int | None) -> dict[str, Any]:
    """Per-task totals of the charges after `since_ms` (all when None), and their sum."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT task_id::text, sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), "
            "sum(cache_write_tokens), sum(cost_usd), sum(cpu_time_ms), sum(subrequests), bool_or(estimated), "
            "min(seq) FROM rm_charges WHERE workspace_id = %s AND occurred_at > %s GROUP BY task_id ORDER BY min(seq)",
            (workspace_id, since_ms if since_ms is not None else -1),
        )
        rows = await cur.fetchall()
    tasks, aggregate = [], dict(ZERO_COST)
    for task_id, tin, tout, cread, cwrite, usd, cpu, subreq, estimated, _ in rows:
        charge = {
            "input_tokens": int(tin),
            "output_tokens": int(tout),
            "cache_read_tokens": int(cread),
            "cache_write_tokens": int(cwrite),
            "cost_usd": float(usd),
            "cpu_time_ms": int(cpu),
            "subrequests": int(subreq),
            "estimated": bool(estimated),
        }
        cost = dict(ZERO_COST)
        add_charge(cost, charge)
        add_charge(aggregate, charge)
        tasks.append({"taskId": task_id, "cost": cost})
    return {"tasks": tasks, "aggregate": aggregate}


async def projector_position(conn: AsyncConnection) -> int:
    cur = await conn.execute("SELECT position FROM rm_position WHERE name = %s", (PROJECTOR,))
    row = await cur.fetchone()
    return row[0] if row else 0


async def feed(
    pool: AsyncConnectionPool, workspace_id: str, after: int, limit: int = 1000
) -> tuple[list[tuple[int, str, str, dict[str, Any]]], int]:
    """Feed rows after `after`, and the projector position they are complete up to."""
    async with pool.connection() as conn, conn.transaction():
        # One snapshot: every event at or below the position is in the rows we read.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        position = await projector_position(conn)
        cur = await conn.execute(
            "SELECT seq, type, aggregate_id, payload FROM rm_feed WHERE workspace_id = %s AND seq > %s "
            "ORDER BY seq LIMIT %s",
            (workspace_id, after, limit),
        )
        rows = await cur.fetchall()
    return [(r[0], r[1], r[2], r[3]) for r in rows], position


DUMP_EVENT_LIMIT = 10_000


async def debug_dump(pool: AsyncConnectionPool, workspace_id: str) -> dict[str, Any]:
    """Everything the read models hold for one workspace, read in one snapshot."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        position = await projector_position(conn)
        found, keys = await workspace(conn, workspace_id), await workspace_keys(conn, workspace_id)
        cur = await conn.execute(
            "SELECT state FROM rm_tasks WHERE workspace_id = %s ORDER BY created_at, task_id", (workspace_id,)
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
        elif kind == "run.model_called":
            run["modelCalls"] += 1
        elif kind == "run.tool_called":
            run["toolCalls"] += 1
        elif kind in ("run.succeeded", "run.failed", "run.budget_stopped"):
            run["status"] = kind.removeprefix("run.")
            if kind == "run.failed":
                run["error"] = p["error"]
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


async def api_key(pool: AsyncConnectionPool, key_id: str) -> dict[str, Any] | None:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT workspace_id, key_hash, revoked_at FROM rm_api_keys WHERE key_id = %s", (key_id,), prepare=True
        )
        row = await cur.fetchone()
    return {"workspace_id": row[0], "key_hash": row[1], "revoked_at": row[2]} if row else None


def _connection(source: AsyncConnectionPool | AsyncConnection) -> Any:
    """A pool's connection, or the connection given (to read inside its transaction)."""
    return source.connection() if isinstance(source, AsyncConnectionPool) else contextlib.nullcontext(source)


async def workspace(source: AsyncConnectionPool | AsyncConnection, workspace_id: str) -> dict[str, Any] | None:
    async with _connection(source) as conn:
        cur = await conn.execute(
            "SELECT name, created_at, config, purged_through FROM rm_workspaces WHERE workspace_id = %s",
            (workspace_id,),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return {"workspaceID": workspace_id, "name": row[0], "createdAt": row[1], "config": row[2], "purgedThrough": row[3]}


async def workspace_keys(source: AsyncConnectionPool | AsyncConnection, workspace_id: str) -> list[dict[str, Any]]:
    async with _connection(source) as conn:
        cur = await conn.execute(
            "SELECT key_id, label, created_at, revoked_at FROM rm_api_keys WHERE workspace_id = %s ORDER BY created_at",
            (workspace_id,),
        )
        rows = await cur.fetchall()
    return [{"keyId": r[0], "label": r[1], "createdAt": r[2], "revokedAt": r[3]} for r in rows]


async def unfinished_tasks(pool: AsyncConnectionPool, workspace_id: str) -> list[str]:
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT task_id::text FROM rm_tasks WHERE workspace_id = %s "
            "AND status NOT IN ('completed', 'failed', 'cancelled') ORDER BY created_at, task_id",
            (workspace_id,),
        )
        return [r[0] for r in await cur.fetchall()]


def _tool_call_conditions(workspace_id: str, only: ToolCallFilter) -> tuple[Composed, list[Any]]:
    conditions: list[Composable] = [SQL("workspace_id = %s")]
    params: list[Any] = [workspace_id]
    for column, value in (
        ("tool", only.tool),
        ("status", only.status),
        ("session_id", only.session_id),
        ("agent_name", only.agent_name),
    ):
        if value is not None:
            conditions.append(SQL("{} = %s").format(Identifier(column)))
            params.append(value)
    if only.since is not None:
        conditions.append(SQL("occurred_at >= %s"))
        params.append(only.since)
    if only.until is not None:
        conditions.append(SQL("occurred_at < %s"))
        params.append(only.until)
    return SQL(" AND ").join(conditions), params


_TOOL_CALL_COLUMNS = SQL(", ").join(Identifier(c) for c in toolcalls.COLUMNS)


async def tool_calls(
    pool: AsyncConnectionPool, workspace_id: str, only: ToolCallFilter, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """One page of the workspace's tool call log (newest first) and how many calls match in all."""
    where, params = _tool_call_conditions(workspace_id, only)
    async with pool.connection() as conn, conn.transaction():
        # One snapshot: the total and the page agree.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur = await conn.execute(SQL("SELECT count(*) FROM rm_tool_calls WHERE {}").format(where), params)
        row = await cur.fetchone()
        total = int(row[0]) if row else 0
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            SQL("SELECT {} FROM rm_tool_calls WHERE {} ORDER BY seq DESC LIMIT %s OFFSET %s").format(
                _TOOL_CALL_COLUMNS, where
            ),
            [*params, limit, (page - 1) * limit],
        )
        rows = await cur.fetchall()
    return rows, total


async def tool_calls_after(
    pool: AsyncConnectionPool, workspace_id: str, after: int, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    """The workspace's tool calls after seq `after`, oldest first, and the projector position
    they are complete up to (like `feed`, for the log's stream)."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        position = await projector_position(conn)
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(
            SQL("SELECT {} FROM rm_tool_calls WHERE workspace_id = %s AND seq > %s ORDER BY seq LIMIT %s").format(
                _TOOL_CALL_COLUMNS
            ),
            (workspace_id, after, limit),
        )
        rows = await cur.fetchall()
    return rows, position


async def open_questions(pool: AsyncConnectionPool, workspace_id: str, question_id: str | None = None) -> list[Any]:
    """The workspace's unanswered, unexpired questions (or the one asked for), oldest first."""
    by_id = " AND question_id = %s" if question_id else ""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT question_id, session_id, questions, tool FROM rm_questions "
            f"WHERE workspace_id = %s AND status = 'open'{by_id} ORDER BY asked_at, question_id",
            (workspace_id, question_id) if question_id else (workspace_id,),
        )
        rows = await cur.fetchall()
    return [{"id": r[0], "sessionID": r[1], "questions": r[2], "tool": r[3]} for r in rows]
