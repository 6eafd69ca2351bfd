"""Coordination channels' read models (spec 002): `rm_channels`, a row per channel a message
opened, and `rm_channel_messages`, a row per message, which `recv` and the inbox read. The
projector calls `project` with each batch, in its transaction, and `purge` with a workspace's
purge.

Beside them, `agent_channel_cursors`: how far each session has received on each channel. It is
no projection of the log (a session moves it with every `recv`, and no one needs that as an
event, as with lease heartbeats): the runtime service owns it, and a rebuild of the read models
keeps it. Positions are the log's seqs, which a rebuild does not change.
"""

from __future__ import annotations

from typing import Any

import msgspec
import psycopg

from contracts.events import Event
from contracts.payloads.channel import ChannelMessageSent, ChannelOpened

TABLES = ("rm_channels", "rm_channel_messages")

DDL = """
CREATE TABLE IF NOT EXISTS rm_channels (
    channel_id uuid PRIMARY KEY,
    workspace_id text NOT NULL,
    channel text NOT NULL,
    task_id text NOT NULL,
    run_id text,
    opened_at bigint NOT NULL,
    last_activity_at bigint NOT NULL,
    messages bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_channels_workspace ON rm_channels (workspace_id, last_activity_at);
CREATE INDEX IF NOT EXISTS rm_channels_name ON rm_channels (workspace_id, channel);
CREATE TABLE IF NOT EXISTS rm_channel_messages (
    seq bigint PRIMARY KEY,
    workspace_id text NOT NULL,
    channel_id uuid NOT NULL,
    channel text NOT NULL,
    task_id text NOT NULL,
    run_id text,
    message_id text NOT NULL,
    from_session_id text NOT NULL,
    to_session_id text,
    kind text NOT NULL,
    correlation_id text NOT NULL,
    reply_to_message_id text,
    occurred_at bigint NOT NULL,
    body jsonb,
    ext jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS rm_channel_messages_channel ON rm_channel_messages (channel_id, seq);
CREATE INDEX IF NOT EXISTS rm_channel_messages_workspace ON rm_channel_messages (workspace_id, seq);
-- The channels a session posted on (`me.channels`).
CREATE INDEX IF NOT EXISTS rm_channel_messages_sender ON rm_channel_messages (from_session_id, channel_id);
CREATE TABLE IF NOT EXISTS agent_channel_cursors (
    session_id text NOT NULL,
    channel_id uuid NOT NULL,
    position bigint NOT NULL,
    PRIMARY KEY (session_id, channel_id)
);
"""

# The projector NOTIFYs this channel, in the transaction that writes a batch's messages, with
# the ids of the channels they went to: a waiting `recv` is woken once its messages are readable.
MESSAGES_CHANNEL = "channel_messages"
ALL = "*"  # too many channels for one notice: every waiter looks
NOTIFY_LIMIT = 7900  # PostgreSQL's NOTIFY payload limit is 8000 bytes


def message_row(e: Event[ChannelMessageSent]) -> dict[str, Any]:
    p = e.payload
    return {
        "seq": e.seq,
        "workspace_id": e.workspace_id,
        "channel_id": e.aggregate_id,
        "channel": p.channel,
        "task_id": p.task_id,
        "run_id": p.run_id,
        "message_id": p.message_id,
        "from_session_id": p.from_session_id,
        "to_session_id": p.to_session_id,
        "kind": p.kind,
        "correlation_id": p.correlation_id,
        "reply_to_message_id": p.reply_to_message_id,
        "occurred_at": e.occurred_at,
        "body": p.body,
        "ext": p.ext,
    }


def channel_rows(events: list[Event[Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The channels the batch opens, and per channel its batch's messages (how many, the last's
    time): rows to insert, then to add to what the table holds."""
    opened: list[dict[str, Any]] = []
    active: dict[str, dict[str, Any]] = {}
    for e in events:
        p = e.payload
        if isinstance(p, ChannelOpened):
            opened.append(_channel(e, p.channel, p.task_id, p.run_id, messages=0))
        elif isinstance(p, ChannelMessageSent):
            row = active.setdefault(e.aggregate_id, _channel(e, p.channel, p.task_id, p.run_id, messages=0))
            row["messages"] += 1
            row["last_activity_at"] = e.occurred_at
    return opened, list(active.values())


def _channel(e: Event[Any], channel: str, task_id: str, run_id: str | None, messages: int) -> dict[str, Any]:
    return {
        "channel_id": e.aggregate_id,
        "workspace_id": e.workspace_id,
        "channel": channel,
        "task_id": task_id,
        "run_id": run_id,
        "opened_at": e.occurred_at,
        "last_activity_at": e.occurred_at,
        "messages": messages,
    }


def notice(channel_ids: list[str]) -> str:
    text = ",".join(sorted(set(channel_ids)))
    return text if len(text) <= NOTIFY_LIMIT else ALL


def project(cur: psycopg.Cursor[Any], events: list[Event[Any]]) -> None:
    """The batch's channels and messages (none in most batches: then no statement at all)."""
    opened, active = channel_rows(events)
    messages = [message_row(e) for e in events if isinstance(e.payload, ChannelMessageSent)]
    if opened:
        cur.execute(
            "INSERT INTO rm_channels SELECT * FROM json_populate_recordset(NULL::rm_channels, %s) "
            "ON CONFLICT (channel_id) DO NOTHING",
            (_json(opened),),
        )
    if not messages:
        return
    # A channel a purge dropped is back with its next message, counted from there.
    cur.execute(
        "INSERT INTO rm_channels SELECT * FROM json_populate_recordset(NULL::rm_channels, %s) "
        "ON CONFLICT (channel_id) DO UPDATE SET last_activity_at = excluded.last_activity_at, "
        "messages = rm_channels.messages + excluded.messages",
        (_json(active),),
    )
    cur.execute(
        "INSERT INTO rm_channel_messages SELECT * FROM json_populate_recordset(NULL::rm_channel_messages, %s) "
        "ON CONFLICT (seq) DO NOTHING",
        (_json(messages),),
    )
    # Delivered when the batch commits, so a woken `recv` finds the messages (a NOTIFY from the
    # sender, after its own commit, could wake it before the projector has written them).
    cur.execute("SELECT pg_notify(%s, %s)", (MESSAGES_CHANNEL, notice([r["channel_id"] for r in active])))


def purge(cur: psycopg.Cursor[Any], workspace_id: str, seq: int) -> None:
    """A workspace's purge drops its channels and their messages (the channels themselves live
    on in the log: a later message brings its channel back)."""
    cur.execute("DELETE FROM rm_channel_messages WHERE workspace_id = %s AND seq < %s", (workspace_id, seq))
    cur.execute("DELETE FROM rm_channels WHERE workspace_id = %s", (workspace_id,))


def _json(rows: list[dict[str, Any]]) -> str:
    # Bodies holding U+0000 are refused at the edge (`libs.web.bodies`), so none is in the log.
    return msgspec.json.encode(rows).decode()
