"""What the planner's orchestration handlers read and write, without a database: the blobs a run
stored (its definition, its files) and the aggregates saved; a load finds only the steps' Runs a
test made (any other reads as none: its turns read as 0)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from libs.domain.run import Run


class FakeBlobs:
    def __init__(self) -> None:
        self.saved: dict[str, str] = {}

    def load(self, workspace_id: str, digests: Any) -> dict[str, str]:
        return {d: self.saved[d] for d in digests}


class FakeStore:
    def __init__(self) -> None:
        self.blobs = FakeBlobs()
        self.aggregates: list[Any] = []
        self.runs: dict[UUID, Run] = {}

    def save(self, aggregates: list[Any], blobs: Any = ()) -> int:
        self.blobs.saved.update({b.digest: b.content.decode() for b in blobs})
        self.aggregates.extend(aggregates)
        return 42

    def load(self, aggregate_id: Any) -> Any:
        return self.runs.get(aggregate_id)
