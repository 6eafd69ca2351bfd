"""Spec 003's worker callback (`POST /api/callbacks/complete`): a container worker reports its
run's end, authenticated by the per-run callback token it was started with."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from contracts.task_feed import TASK_ID_PATTERN

Id = Annotated[str, msgspec.Meta(pattern=TASK_ID_PATTERN)]
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=2000)] | int | float | bool | None


class WorkerCallback(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """The run's end as the worker saw it. `succeeded` only for a run it completed
    (`POST /api/agent/tasks/{run_id}/complete`); `failed` ends a run it still holds."""

    task_id: Id
    run_id: Id
    status: Literal["succeeded", "failed"]
    pr_url: Annotated[str, msgspec.Meta(max_length=2000, pattern=r"^https?://\S+$")] | None = None
    error: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)] | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], msgspec.Meta(max_length=50)] = {}


class CallbackAnswer(msgspec.Struct, frozen=True, rename="camel"):
    """`recorded`: this report is on record now; `unchanged`: the same report was, already."""

    status: Literal["recorded", "unchanged"]
    task_id: str
    run_id: str
