"""What the channel routes answer (spec 002's wire shapes) from the read models' rows, and from a
message just sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from contracts.agent_runtime import ChannelMessage, ChannelView, MessageMetadata
from contracts.payloads.channel import ChannelMessageSent
from libs.domain.channel import KINDS, REPLY_TO
from libs.readmodels.channel_reads import ChannelRow, MessageRow

PREVIEW_CHARS = 200


def sent_row(sent: ChannelMessageSent, at: datetime) -> MessageRow:
    """A message just sent, as a read of the read models will give it (times in ms, as the log's)."""
    return MessageRow(
        seq=0,
        channel=sent.channel,
        task_id=sent.task_id,
        run_id=sent.run_id,
        message_id=sent.message_id,
        from_session_id=sent.from_session_id,
        to_session_id=sent.to_session_id,
        kind=sent.kind,
        correlation_id=sent.correlation_id,
        reply_to_message_id=sent.reply_to_message_id,
        occurred_at=int(at.timestamp() * 1000),
        body=sent.body,
        ext=sent.ext,
    )


def message_view(row: MessageRow) -> ChannelMessage:
    return ChannelMessage(
        body=row.body,
        channel_id=row.channel,
        from_session_id=row.from_session_id,
        message_id=row.message_id,
        metadata=metadata_view(row),
        timestamp=time_of(row.occurred_at),
        to_session_id=row.to_session_id,
    )


def metadata_view(row: MessageRow) -> MessageMetadata:
    ext = row.ext if row.reply_to_message_id is None else {**row.ext, REPLY_TO: row.reply_to_message_id}
    return MessageMetadata(
        coordination_channel_id=row.channel,
        correlation_id=row.correlation_id,
        ext=ext,
        message_kind=row.kind,
        run_id=row.run_id,
        task_id=row.task_id,
        workflow_id=None,
    )


def channel_view(workspace_id: str, row: ChannelRow) -> ChannelView:
    if row.run_id is None:
        display, purpose = f"Task {row.task_id[:8]}", f"Coordination of the sessions working on task {row.task_id}"
    else:
        display = f"Run {row.run_id[:8]} of task {row.task_id[:8]}"
        purpose = f"Coordination of the sessions working on run {row.run_id} of task {row.task_id}"
    return ChannelView(
        allowed_message_kinds=list(KINDS),
        channel=row.channel,
        display_name=display,
        id=row.channel,
        last_activity_at=time_of(row.last_activity_at) if row.last_activity_at is not None else None,
        purpose=purpose,
        run_id=row.run_id,
        task_id=row.task_id,
        workflow_id=None,
        workspace_id=workspace_id,
    )


def preview(body: Any) -> str:
    """The start of a message's body, as text: a string as it is, anything else as JSON."""
    text = body if isinstance(body, str) else msgspec.json.encode(body).decode()
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def time_of(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
