"""The payloads of a Channel's events (owner: the runtime service): `channel.<event>` on the wire.
A channel is where a workspace's agent sessions coordinate about one task, or one run of it
(spec 002); each message is an event, so it has a seq, replays, and shows on the feed."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.payloads.shapes import Payload


class ChannelOpened(Payload, frozen=True, kw_only=True):
    """The channel's first message opens it (in the same commit)."""

    channel: str  # its id on the API: `task_<task id>` or `run_<run id>`
    task_id: str
    run_id: str | None  # a run's own channel; None for the task's
    allowed_kinds: list[str]
    opened_by_session_id: str


class ChannelMessageSent(Payload, frozen=True, kw_only=True):
    # Repeats what the channel is, so a read model rebuilt after a purge (which drops the
    # workspace's channels, not the aggregates) knows each message's channel from the message.
    channel: str
    task_id: str
    run_id: str | None
    message_id: str  # `<channel>:<n>`, n counting the channel's messages from 1
    from_session_id: str
    to_session_id: str | None  # a reply's: the sender of the message it answers
    kind: str
    correlation_id: str  # one per thread: a reply carries its question's
    reply_to_message_id: str | None
    body: Any  # any JSON, bounded in size (`libs.domain.channel.MAX_BODY_BYTES`)
    ext: dict[str, Any]  # the sender's own metadata, bounded likewise


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "channel.opened": ChannelOpened,
    "channel.message_sent": ChannelMessageSent,
}
