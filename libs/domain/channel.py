"""Channel: where a workspace's agent sessions coordinate about one task, or one run of it
(spec 002), owned by the runtime service. Its first message opens it; every message is an
event of it, numbered in the channel (`<channel>:<n>`), so a reply finds what it answers, and
who asked, in the channel itself rather than in a read model that may lag the question."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import msgspec

from contracts.agent_runtime import MESSAGE_KINDS
from contracts.payloads.channel import ChannelMessageSent, ChannelOpened
from libs.domain.base import WorkspaceAggregate, derived_id
from libs.domain.errors import DomainError

TASK, RUN = "task", "run"
# What a message can be about; a channel refuses any other kind (naming these).
KINDS = MESSAGE_KINDS
# A message is a small typed event, never a file (files go by digest): its body and its
# sender's metadata, each as JSON, are bounded.
MAX_BODY_BYTES = 16 * 1024
MAX_EXT_BYTES = 4 * 1024
# The key the API's view of a reply adds to its `metadata.ext`: a sender may not set it.
REPLY_TO = "reply_to_message_id"

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_NAME = re.compile(rf"^({TASK}|{RUN})_({_UUID})$")
_MESSAGE_ID = re.compile(rf"^((?:{TASK}|{RUN})_{_UUID}):([1-9][0-9]{{0,17}})$")


class MessageRefused(DomainError):
    """A message the channel does not take; the edge answers 400 with `evidence`."""

    code = "message_refused"

    def __init__(self, code: str, message: str, evidence: dict[str, Any]) -> None:
        super().__init__(message)
        self.code, self.evidence = code, evidence


@dataclass(frozen=True)
class ChannelName:
    scope: str  # TASK or RUN
    target: str  # the task's or the run's id (a UUID, lower case)

    @property
    def name(self) -> str:
        return f"{self.scope}_{self.target}"


def parse_name(text: str) -> ChannelName | None:
    """The channel a name means (`task_<task id>`, `run_<run id>`), or None."""
    found = _NAME.match(text)
    return ChannelName(found[1], found[2]) if found else None


def channel_id(workspace_id: str, name: str) -> UUID:
    """The aggregate of a workspace's channel: another workspace's of the same name is another."""
    return derived_id("channel", workspace_id, name)


def split_message_id(message_id: str) -> tuple[str, int] | None:
    """(channel name, number in the channel) of a message id, or None."""
    found = _MESSAGE_ID.match(message_id)
    return (found[1], int(found[2])) if found else None


def json_size(value: Any) -> int:
    return len(msgspec.json.encode(value))


@dataclass(frozen=True)
class Sent:
    """What a reply needs of an earlier message."""

    from_session_id: str
    correlation_id: str


class Channel(WorkspaceAggregate):
    class Opened(WorkspaceAggregate.Created):
        payload: ChannelOpened

    def __init__(self, workspace_id: str, payload: ChannelOpened) -> None:
        self.workspace_id = workspace_id
        self.name = payload.channel
        self.task_id = payload.task_id
        self.run_id = payload.run_id
        self.allowed_kinds = list(payload.allowed_kinds)
        self.sent: list[Sent] = []  # message n is sent[n - 1]

    @classmethod
    def open(
        cls, workspace_id: str, name: ChannelName, task_id: str, session_id: str, kinds: tuple[str, ...] = KINDS
    ) -> Channel:
        opened = ChannelOpened(
            channel=name.name,
            task_id=task_id,
            run_id=name.target if name.scope == RUN else None,
            allowed_kinds=list(kinds),
            opened_by_session_id=session_id,
        )
        return cls._create(
            cls.Opened, id=channel_id(workspace_id, name.name), workspace_id=workspace_id, payload=opened
        )

    def message(self, message_id: str) -> Sent | None:
        found = split_message_id(message_id)
        if found is None or found[0] != self.name or found[1] > len(self.sent):
            return None
        return self.sent[found[1] - 1]

    def send(
        self,
        session_id: str,
        kind: str,
        body: Any,
        ext: dict[str, Any],
        correlation_id: str | None = None,
        reply_to: str | None = None,
    ) -> ChannelMessageSent:
        """Appends a message (a reply when `reply_to` names one of this channel's); returns it."""
        self._check(kind, body, ext)
        to_session_id = None
        if reply_to is not None:
            asked = self.message(reply_to)
            if asked is None:
                raise MessageRefused("message_not_found", f"no message {reply_to} in {self.name}", {REPLY_TO: reply_to})
            if correlation_id is not None and correlation_id != asked.correlation_id:
                raise MessageRefused(
                    "correlation_mismatch",
                    f"a reply carries the correlation id of the message it answers ({asked.correlation_id})",
                    {"correlation_id": correlation_id, "expected": asked.correlation_id, REPLY_TO: reply_to},
                )
            to_session_id, correlation_id = asked.from_session_id, asked.correlation_id
        sent = ChannelMessageSent(
            channel=self.name,
            task_id=self.task_id,
            run_id=self.run_id,
            message_id=f"{self.name}:{len(self.sent) + 1}",
            from_session_id=session_id,
            to_session_id=to_session_id,
            kind=kind,
            correlation_id=correlation_id or f"cor_{uuid.uuid4().hex}",
            reply_to_message_id=reply_to,
            body=body,
            ext=ext,
        )
        self.emit(self.MessageSent, sent)
        return sent

    def _check(self, kind: str, body: Any, ext: dict[str, Any]) -> None:
        if kind not in self.allowed_kinds:
            allowed = ", ".join(self.allowed_kinds)
            raise MessageRefused(
                "message_kind_not_allowed",
                f"metadata.message_kind: {kind!r} is not a kind {self.name} takes ({allowed})",
                {"message_kind": kind, "allowed_message_kinds": self.allowed_kinds},
            )
        check_sizes(body, ext)

    class MessageSent(WorkspaceAggregate.Event):
        payload: ChannelMessageSent

        def apply(self, channel: Channel) -> None:
            channel.sent.append(Sent(self.payload.from_session_id, self.payload.correlation_id))


def check_sizes(body: Any, ext: dict[str, Any]) -> None:
    """Refuses a body or an `ext` over its bound, and an `ext` that sets the reply's key."""
    for field, value, limit in (("body", body, MAX_BODY_BYTES), ("metadata.ext", ext, MAX_EXT_BYTES)):
        size = json_size(value)
        if size > limit:
            raise MessageRefused(
                "message_too_large",
                f"{field}: {size} bytes as JSON, more than the {limit} a message may carry",
                {"field": field, "bytes": size, "max_bytes": limit},
            )
    if REPLY_TO in ext:
        raise MessageRefused(
            "reserved_metadata",
            f"metadata.ext.{REPLY_TO} is set by the channel on a reply: send it as `{REPLY_TO}` to /channels/reply",
            {"field": f"metadata.ext.{REPLY_TO}"},
        )
