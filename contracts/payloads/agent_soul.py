"""The payloads of an AgentSoul's events (owner: the runtime service): `agent_soul.<event>` on the
wire. A soul is a workspace's document for one agent name (spec 002), stored whole: it is small
(64 KiB at most, `libs.soul`), and a replay reads it back to the byte."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class AgentSoulSet(Payload, frozen=True, kw_only=True):
    agent_name: str
    document: str  # as written; only a valid one is stored
    digest: str  # "sha256:<hex>" of its bytes
    source_path: str


class AgentSoulCreated(AgentSoulSet, frozen=True, kw_only=True):
    """The agent name's first soul: a revision like any later one."""


PAYLOADS: dict[str, type[msgspec.Struct]] = {"agent_soul.created": AgentSoulCreated, "agent_soul.set": AgentSoulSet}
