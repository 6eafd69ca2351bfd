"""A served task's files as spec 000 shows them: the read model keeps the refs its events carry
(`path -> {"digest", "size"}`), and `GET /tasks/{id}` shows the contents."""

from __future__ import annotations

from typing import Any

from libs.eventstore.blobs import BlobStore, contents, digests_in


def with_contents(blobs: BlobStore, workspace_id: str, state: dict[str, Any]) -> dict[str, Any]:
    """`state` (a task row's, which the caller owns) with the request's files and each result's
    output files as path -> content, loaded in one query."""
    repo = state["request"]["repo"]
    outputs = [r["output"] for r in state["results"].values() if r.get("output")]
    loaded = blobs.load(workspace_id, digests_in(repo["files"], *(o.get("files") for o in outputs)))
    repo["files"] = contents(repo["files"], loaded)
    for output in outputs:
        output["files"] = contents(output.get("files") or {}, loaded)
    return state
