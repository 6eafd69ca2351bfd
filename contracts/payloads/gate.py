"""The payloads of a task review Gate's events (owner: review): `gate.<event>` on the wire."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class GateOpened(Payload, frozen=True, kw_only=True):
    task_id: str
    kind: str  # "task_review"


class GateDecided(Payload, frozen=True, kw_only=True):
    task_id: str
    decision: str  # "approve" | "reject" | "revise"
    feedback: str | None = None


PAYLOADS: dict[str, type[msgspec.Struct]] = {"gate.opened": GateOpened, "gate.decided": GateDecided}
