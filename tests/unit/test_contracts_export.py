"""The committed JSON Schemas and OpenAPI document are what `just contracts` would write now."""

from __future__ import annotations

from exports.documents import SCHEMAS_DIR, render


def test_exported_contracts_are_fresh() -> None:
    rendered = render()
    committed = {p.name: p.read_text() for p in SCHEMAS_DIR.glob("*.json")}
    stale = sorted(name for name in rendered.keys() | committed.keys() if rendered.get(name) != committed.get(name))
    assert not stale, f"run `just contracts`: stale or missing {stale}"


def test_the_spec_000_routes_are_in_the_openapi_document() -> None:
    import json

    paths = json.loads(render()["openapi.json"])["paths"]
    for path in ("/health", "/tasks", "/tasks/{task_id}", "/tasks/{task_id}/review", "/costs"):
        assert path in paths
    assert "/api/v1/workspaces/{workspaceID}/orchestration/events" in paths
    # Litestar leaves WebSocket routes out; the gateway documents the live logs itself.
    assert "LogsMessage" in paths["/tasks/{task_id}/stream"]["get"]["description"]
    events = paths["/api/v1/workspaces/{workspaceID}/orchestration/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in events["content"]
