"""An orchestration run's state as spec 004's answers show it: the run's events and its read
model keep files and long answers by digest (a files key as `path -> {"digest", "size"}`, a long
answer as one `{"digest", "size"}`: `libs.orchestrations.values`), and `shared_state` shows their
contents, as `GET /tasks/{id}` shows a task's files and as a run's body gives them."""

from __future__ import annotations

from typing import Any

from libs.eventstore.blobs import BlobStore, contents, digests_in
from libs.orchestrations import values


def with_contents(blobs: BlobStore, workspace_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """`state` with each files key as path -> content and each long answer as its text, loaded in
    one query (none without either). The state's mappings are these two: its other types are
    strings, numbers and booleans."""
    files = [key for key, value in state.items() if isinstance(value, dict) and not values.is_stored(value)]
    stored = values.digests(state)
    if not files and not stored:
        return state
    loaded = blobs.load(workspace_id, stored | digests_in(*(state[key] for key in files)))
    return {**values.text_of(state, loaded), **{key: contents(state[key], loaded) for key in files}}
