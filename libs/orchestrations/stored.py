"""The definition an orchestration run follows: the blob its start stored by digest."""

from __future__ import annotations

import functools

import msgspec

from contracts.orchestrations import Orchestration
from libs.eventstore.store import EventStore


@functools.lru_cache(maxsize=256)
def definition_of(store: EventStore, workspace_id: str, digest: str) -> Orchestration:
    # A blob never changes: a definition read once is the same for every later step.
    content = store.blobs.load(workspace_id, [digest])[digest]
    return msgspec.json.decode(content, type=Orchestration)
