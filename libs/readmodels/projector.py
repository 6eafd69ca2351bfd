"""The projector: folds the event log into the read models, one transaction per batch.

It follows the notification log itself (not the bus), so its position is the log's own
`seq`; the rows it writes and its position commit together, so a crash replays cleanly.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

import psycopg

from contracts.events import Event, EventEnvelope, public_payload, task_of, typed
from contracts.payloads.ledger import LedgerCharged
from contracts.payloads.question_gate import QuestionGateAnswered, QuestionGateAsked, QuestionGateExpired
from contracts.payloads.run import (
    RunToolCalled,
)
from contracts.payloads.task import TaskSubmitted
from contracts.payloads.workspace import (
    WorkspaceConfigUpdated,
    WorkspaceCreated,
    WorkspaceKeyIssued,
    WorkspaceKeyRevoked,
    WorkspacePurged,
    WorkspaceSecretCleared,
    WorkspaceSecretSet,
)
from libs.eventstore.store import EventStore
from libs.readmodels import (
    agent_sessions,
    channels,
    leases,
    orchestration_runs,
    run_usage,
    task_history,
    task_log,
    toolcalls,
    worker_machines,
)
from libs.readmodels.codec import as_json as _json
from libs.readmodels.schema import PROJECTOR, READMODELS_CHANNEL
from libs.readmodels.task_view import TaskView

log = logging.getLogger(__name__)

BATCH = 2000


def position(conn: psycopg.Connection, name: str = PROJECTOR) -> int:
    row = conn.execute("SELECT position FROM rm_position WHERE name = %s", (name,)).fetchone()
    return row[0] if row else 0


def _task_id(e: Event[Any]) -> str | None:
    """The task whose row the event changes: its own events, and its charges."""
    if e.type.startswith("task."):
        return e.aggregate_id
    if isinstance(e.payload, LedgerCharged):
        return e.payload.task_id
    return None


class StaleProjector(Exception):
    """Another projector advanced the read models: this one must stop."""


def project(conn: psycopg.Connection, events: list[EventEnvelope], expected: int) -> int:
    """Applies one batch of events (in seq order) after position `expected`, and records the
    new position. Each event is typed once (`contracts.events.typed`) and every table reads the
    typed event; the feed keeps the payload as the event carries it (`public_payload`)."""
    ids = {t for e in events if (t := task_of(e))}
    views: dict[str, TaskView] = {}
    purged: set[str] = set()
    if ids:
        rows = conn.execute(
            "SELECT task_id, state, subtask_costs FROM rm_tasks WHERE task_id = ANY(%s::uuid[])", (_uuids(ids),)
        ).fetchall()
        views = {str(r[0]): TaskView(r[1], r[2]) for r in rows}
        # Only a task neither held nor new can be a purged one: no query in a batch without one.
        unknown = ids - views.keys() - {e.aggregate_id for e in events if e.type == "task.submitted"}
        if unknown:
            found = conn.execute(
                "SELECT task_id FROM rm_purged_tasks WHERE task_id = ANY(%s::uuid[])", (_uuids(unknown),)
            ).fetchall()
            purged = {str(r[0]) for r in found}
    status_before = {task_id: v.state["status"] for task_id, v in views.items()}
    charges: list[dict[str, Any]] = []
    touched: dict[str, str] = {}  # task id -> workspace, for the rows to write back
    kept: list[EventEnvelope] = []  # the batch less what is about tasks the read models dropped
    kept_typed: list[Event[Any]] = []  # the same events, typed
    every_typed: list[Event[Any]] = []
    for envelope in events:
        e = typed(envelope)
        every_typed.append(e)
        if isinstance(e.payload, TaskSubmitted):
            views[e.aggregate_id] = TaskView.submitted(e)
        if task_of(envelope) in purged:
            # A task its workspace's purge dropped: what its runs recorded as they stopped (their
            # ends, their charges, its cancellation) is not brought back to any read model, so
            # the feed, the tool log and the dump show nothing of it after the purge.
            continue
        kept.append(envelope)
        kept_typed.append(e)
        if isinstance(e.payload, LedgerCharged):
            # Charged to a task, or to an orchestration run (its agent steps' Runs), which has no task row.
            charges.append(_charge_row(e))
        task_id = _task_id(e)
        if task_id is not None and not isinstance(e.payload, TaskSubmitted):
            view = views.get(task_id)
            if view is None:
                if not isinstance(e.payload, LedgerCharged):
                    log.warning("seq %d (%s) refers to unknown task %s", e.seq, e.type, task_id)
                continue
            view.apply(e)
        if task_id is not None:
            touched[task_id] = e.workspace_id

    # One statement per table, its rows as one JSON document: msgspec encodes it at C speed,
    # where psycopg's array dumpers escaped every element in Python (the stream's top cost).
    with conn.cursor() as cur:
        tasks = [
            {
                "task_id": t,
                "workspace_id": w,
                "status": views[t].state["status"],
                "created_at": views[t].state["createdAt"],
                "updated_at": views[t].state["updatedAt"],
                "state": views[t].state,
                "subtask_costs": views[t].subtask_costs,
                "request": views[t].request,  # only a new row's is written (not in the update below)
            }
            for t, w in touched.items()
            if t in views
        ]
        if tasks:
            cur.execute(
                "INSERT INTO rm_tasks SELECT * FROM json_populate_recordset(NULL::rm_tasks, %s) "
                "ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, "
                "state = excluded.state, subtask_costs = excluded.subtask_costs",
                (_json(tasks),),
            )
        task_history.project(cur, views.values())
        if charges:
            cur.execute(
                "INSERT INTO rm_charges SELECT * FROM json_populate_recordset(NULL::rm_charges, %s) "
                "ON CONFLICT (run_id) DO NOTHING",
                (_json(charges),),
            )
        feed = [
            {
                "seq": e.seq,
                "workspace_id": e.workspace_id,
                "type": e.type,
                "aggregate_id": e.aggregate_id,
                "occurred_at": e.occurred_at,
                "payload": public_payload(e.type, e.payload),
            }
            for e in kept
        ]
        if feed:
            cur.execute(
                "INSERT INTO rm_feed SELECT * FROM json_populate_recordset(NULL::rm_feed, %s) "
                "ON CONFLICT (seq) DO NOTHING",
                (_json(feed),),
            )
        _project_tool_calls(cur, kept_typed)  # before a purge in the batch clears them
        _project_task_log(cur, kept_typed)
        run_usage.project(cur, kept_typed)
        _project_questions(cur, kept_typed)
        channels.project(cur, kept_typed)  # before a purge in the batch clears them
        runs_changed = orchestration_runs.project(cur, kept_typed)  # likewise
        # A run a purge stopped fails (the planner's doing), and that is kept out of the read
        # models with the run: it is announced here, so a request waiting on it is answered.
        runs_changed.update(dict.fromkeys(_project_workspaces(cur, kept_typed), "failed"))
        # Every event, a purged task's too: a lease its purge kept (its run still held) ends
        # when the run does, and the sweeper stops looking at it.
        leases.project(cur, every_typed)
        agent_sessions.project(cur, kept_typed)
        worker_machines.project(cur, every_typed)  # a purge's machines too: the reaper destroys them
        last = events[-1].seq
        # Compare-and-set: a projector that lost its leadership without noticing finds the
        # position moved, and its whole batch rolls back instead of adding costs twice.
        cur.execute(
            "INSERT INTO rm_position (name, position) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
            "SET position = excluded.position WHERE rm_position.position = %s",
            (PROJECTOR, last, expected),
        )
        if cur.rowcount != 1:
            raise StaleProjector(f"the read models moved past seq {expected} under this projector")
        changed = {t: views[t].state["status"] for t in touched if t in views}
        changed = {t: status for t, status in changed.items() if status_before.get(t) != status}
        changed.update(runs_changed)  # an orchestration run's, by its id: `POST .../run` waits on it
        cur.execute("SELECT pg_notify(%s, %s)", (READMODELS_CHANNEL, position_notice(last, changed)))
    return last


def _project_questions(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """Agents' questions: open until answered or expired (few events, written as they come)."""
    for e in events:
        p = e.payload
        if isinstance(p, QuestionGateAsked):
            cur.execute(
                "INSERT INTO rm_questions VALUES (%s, %s, %s, %s, %s, %s, 'open', %s, %s, NULL) ON CONFLICT DO NOTHING",
                (
                    p.question_id,
                    e.workspace_id,
                    p.task_id,
                    p.run_id,
                    _json(p.questions),  # the Structs encode as the event's JSON (`msgspec.to_builtins`)
                    _json(p.tool),
                    e.occurred_at,
                    p.expires_at,
                ),
            )
        elif isinstance(p, QuestionGateAnswered | QuestionGateExpired):
            cur.execute(
                "UPDATE rm_questions SET status = %s, resolved_at = %s WHERE question_id = %s AND workspace_id = %s",
                (e.type.removeprefix("question_gate."), e.occurred_at, p.question_id, e.workspace_id),
            )


def _project_workspaces(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> list[str]:
    """Workspaces and their keys: few events, written as they come, in order; the orchestration
    runs a purge among them stopped."""
    stopped_runs: list[str] = []
    for e in events:
        match e.payload:
            case WorkspaceCreated() as p:
                cur.execute(
                    "INSERT INTO rm_workspaces VALUES (%s, %s, %s, '{}'::jsonb, 0) ON CONFLICT DO NOTHING",
                    (e.workspace_id, p.name, e.occurred_at),
                )
            case WorkspaceKeyIssued() as p:
                cur.execute(
                    "INSERT INTO rm_api_keys VALUES (%s, %s, %s, %s, %s, NULL) ON CONFLICT DO NOTHING",
                    (p.key_id, e.workspace_id, p.key_hash, p.label, e.occurred_at),
                )
            case WorkspaceKeyRevoked() as p:
                cur.execute(
                    "UPDATE rm_api_keys SET revoked_at = %s WHERE key_id = %s AND workspace_id = %s",
                    (e.occurred_at, p.key_id, e.workspace_id),
                )
            case WorkspaceSecretSet() as p:
                # The sealed value stays in the log: a read shows whether one is stored, and its end;
                # credentials are the workspace's own, so a purge keeps them.
                cur.execute(
                    "INSERT INTO rm_workspace_secrets VALUES (%s, %s, %s, %s) ON CONFLICT (workspace_id, name) "
                    "DO UPDATE SET last4 = excluded.last4, updated_at = excluded.updated_at",
                    (e.workspace_id, p.name, p.last4, e.occurred_at),
                )
            case WorkspaceSecretCleared() as p:
                cur.execute(
                    "DELETE FROM rm_workspace_secrets WHERE workspace_id = %s AND name = %s", (e.workspace_id, p.name)
                )
            case WorkspacePurged() as p:
                # Everything the workspace's read models hold up to the purge goes; its config and
                # keys stay, and so does the purge event itself (the feed resumes after it).
                stopped_runs += _purge(cur, e.workspace_id, e.seq, p)
                cur.execute(
                    "UPDATE rm_workspaces SET purged_through = %s WHERE workspace_id = %s", (e.seq, e.workspace_id)
                )
            case WorkspaceConfigUpdated() as p:
                cur.execute(
                    "UPDATE rm_workspaces SET config = %s WHERE workspace_id = %s",
                    (_json(p.config), e.workspace_id),
                )
    return stopped_runs


def _project_tool_calls(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """The tool call log: a row per `run.tool_called`, all of the batch's in one statement."""
    rows = [toolcalls.row(e) for e in events if isinstance(e.payload, RunToolCalled)]
    if rows:
        cur.execute(
            "INSERT INTO rm_tool_calls SELECT * FROM json_populate_recordset(NULL::rm_tool_calls, %s) "
            "ON CONFLICT (seq) DO NOTHING",
            (_json(rows),),
        )


def _project_task_log(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """The tasks' live logs: a row per line the batch's events make, all in one statement."""
    rows = task_log.rows(events)
    if rows:
        cur.execute(
            "INSERT INTO rm_task_log SELECT * FROM json_populate_recordset(NULL::rm_task_log, %s) "
            "ON CONFLICT (seq, ordinal) DO NOTHING",
            (_json(rows),),
        )


def _purge(cur: psycopg.Cursor[Any], workspace: str, seq: int, p: WorkspacePurged) -> list[str]:
    # A task still running that the purge did not stop was submitted while the purge was being
    # recorded: it stays visible rather than run unseen. Likewise a question asked meanwhile.
    # The others are remembered as purged: what comes of them later is kept out (`project`).
    cur.execute(
        "WITH gone AS (DELETE FROM rm_tasks WHERE workspace_id = %s "
        "AND (status IN ('completed', 'failed', 'cancelled') OR task_id::text = ANY(%s)) RETURNING task_id) "
        "INSERT INTO rm_purged_tasks (task_id, workspace_id, purged_at_seq, stopped) "
        "SELECT task_id, %s, %s, task_id::text = ANY(%s) FROM gone ON CONFLICT (task_id) DO NOTHING",
        (workspace, p.stopped_tasks, workspace, seq, p.stopped_tasks),
    )
    stopped_runs = orchestration_runs.purge(cur, workspace, seq, p.stopped_tasks)
    channels.purge(cur, workspace, seq)
    cur.execute(
        "DELETE FROM rm_questions WHERE workspace_id = %s AND (status <> 'open' OR question_id = ANY(%s))",
        (workspace, p.closed_questions),
    )
    cur.execute("DELETE FROM rm_feed WHERE workspace_id = %s AND seq < %s", (workspace, seq))
    cur.execute("DELETE FROM rm_charges WHERE workspace_id = %s", (workspace,))
    cur.execute("DELETE FROM rm_tool_calls WHERE workspace_id = %s", (workspace,))
    # The logs go with their tasks: those of tasks the purge kept (submitted while it was recorded) stay.
    cur.execute(
        "DELETE FROM rm_task_log l WHERE workspace_id = %s "
        "AND NOT EXISTS (SELECT 1 FROM rm_tasks t WHERE t.task_id::text = l.task_id)",
        (workspace,),
    )
    task_history.purge(cur, workspace)
    # Like the charges, except the runs of tasks the purge kept (submitted while it was recorded).
    cur.execute(
        "DELETE FROM rm_run_usage u WHERE workspace_id = %s "
        "AND NOT EXISTS (SELECT 1 FROM rm_tasks t WHERE t.task_id = u.task_id)",
        (workspace,),
    )
    return stopped_runs


NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def position_notice(position: int, statuses: dict[str, str]) -> str:
    """`<position>` then `;<task id>=<status>` per task whose status changed in the batch, so
    readers waiting for a status need no query; `;*` when they do not all fit."""
    notice = str(position) + "".join(f";{t}={status}" for t, status in statuses.items())
    return notice if len(notice) <= NOTIFY_LIMIT else f"{position};*"


def parse_notice(notice: str) -> tuple[int, dict[str, str] | None]:
    """The position and the status changes, or None for the changes when they were left out."""
    position, *changes = notice.split(";")
    if changes == ["*"]:
        return int(position), None
    return int(position), dict(change.split("=", 1) for change in changes)


# An escaped U+0000 (not an escaped backslash followed by "u0000"): jsonb refuses it.
def _uuids(ids: set[str]) -> list[str]:
    """The ids that can be task ids (a task's id is a UUID): anything else matches no row."""
    found = []
    for text in ids:
        try:
            found.append(str(UUID(text)))
        except ValueError:
            continue
    return found


def _charge_row(e: Event[LedgerCharged]) -> dict[str, Any]:
    p = e.payload
    return {
        "run_id": p.run_id,
        "seq": e.seq,
        "workspace_id": e.workspace_id,
        "task_id": p.task_id,
        "subtask_id": p.subtask_id,
        "occurred_at": e.occurred_at,
        "model": p.model,
        "input_tokens": p.input_tokens,
        "output_tokens": p.output_tokens,
        "cache_read_tokens": p.cache_read_tokens,
        "cache_write_tokens": p.cache_write_tokens,
        "cost_usd": p.cost_usd,
        "cpu_time_ms": p.cpu_time_ms,
        "subrequests": p.subrequests,
        "priced": p.priced,
        "estimated": p.estimated,
    }


def _segments(events: list[EventEnvelope]) -> list[list[EventEnvelope]]:
    """The batch cut after each purge: what precedes a purge is written before it clears."""
    segments: list[list[EventEnvelope]] = [[]]
    for e in events:
        segments[-1].append(e)
        if e.type == "workspace.purged":
            segments.append([])
    return [s for s in segments if s]


def catch_up(store: EventStore, conn: psycopg.Connection, after: int | None = None) -> int:
    """Projects everything after the current position (or `after`, the position this projector
    left it at: a projector that moved it since makes the write raise `StaleProjector`); returns
    the new position."""
    pos = position(conn) if after is None else after
    while True:
        events = store.read(pos, BATCH)
        if events:
            with conn.transaction():
                for segment in _segments(events):
                    pos = project(conn, segment, expected=pos)
        # A short read is the whole log as of that read: what commits later NOTIFYs the follower,
        # so reading again now would only find nothing.
        if len(events) < BATCH:
            return pos
