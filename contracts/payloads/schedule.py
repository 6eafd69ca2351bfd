"""The payloads of a workspace's Schedule's events (owner: the planner): `schedule.<event>` on the
wire. A slot is `<task id>/<subtask id>`."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class ScheduleOpened(Payload, frozen=True, kw_only=True):
    pass


class ScheduleQueued(Payload, frozen=True, kw_only=True):
    slot: str


class ScheduleStarted(Payload, frozen=True, kw_only=True):
    slot: str


class ScheduleFinished(Payload, frozen=True, kw_only=True):
    slot: str


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "schedule.opened": ScheduleOpened,
    "schedule.queued": ScheduleQueued,
    "schedule.started": ScheduleStarted,
    "schedule.finished": ScheduleFinished,
}
