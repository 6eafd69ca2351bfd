"""An orchestration run's files keys as spec 004's answers show them: the run's events and its
read model keep the refs (`path -> {"digest", "size"}`), and `shared_state` shows the contents,
as `GET /tasks/{id}` shows a task's files and as a run's body gives them."""

from __future__ import annotations

from typing import Any

from libs.eventstore.blobs import BlobStore


def with_contents(blobs: BlobStore, workspace_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """`state` with each files key as path -> content, loaded in one query (none without a files
    key). A files key is the state's only mapping: the other types are strings, numbers and
    booleans."""
    keys = [key for key, value in state.items() if isinstance(value, dict)]
    if not keys:
        return state
    loaded = blobs.files(workspace_id, *(state[key] for key in keys))
    return {**state, **dict(zip(keys, loaded, strict=True))}
