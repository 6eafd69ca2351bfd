"""Workspaces (the gateway is their single writer): the admin API, and spec 001's config.

Admin routes take the admin token (`ADMIN_TOKEN`); config routes take a key of the workspace.
Every change is an event on the Workspace aggregate, saved here and read back through the read
models once the projector has reached it (so a key works the moment it is handed out).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Request, delete, get, patch, post
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, RequestBody
from litestar.params import FromPath, JSONBody

from contracts.workspaces import (
    IssuedKey,
    KeyInfo,
    NewKey,
    NewWorkspace,
    OrchestrationConfig,
    Purged,
    Revoked,
    WorkspaceInfo,
)
from libs.domain.errors import DomainError
from libs.domain.workspace import Workspace, new_workspace_id, split_key, workspace_aggregate_id
from libs.readmodels import orchestration_runs, question_reads, task_reads, workspace_reads
from libs.web.auth import workspace_of
from libs.web.bodies import decode_body
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS, register
from services.gateway.state import GatewayState, gateway_state

T = TypeVar("T")
ADMIN = {"admin": True}
CONFIG = "/api/v1/workspaces/{workspace_id:str}/orchestration/config"
WRITE_ATTEMPTS = 5


async def _load(state: GatewayState, workspace_id: str) -> Workspace | None:
    found: Workspace | None = await asyncio.to_thread(state.store.load, workspace_aggregate_id(workspace_id))
    return found


async def change_workspace(state: GatewayState, workspace_id: str, change: Callable[[Workspace], T]) -> T:
    """Applies `change` to the workspace and saves it, again on fresh state when another
    gateway replica wrote in between; waits until the read models show the change."""
    for _ in range(WRITE_ATTEMPTS):
        workspace = await _load(state, workspace_id)
        if workspace is None:
            raise ApiError(404, "Not found", f"workspace {workspace_id} not found")
        try:
            result = change(workspace)
        except DomainError as exc:
            raise ApiError(404, "Not found", str(exc)) from None
        try:
            seq = await asyncio.to_thread(state.store.save, [workspace])
        except IntegrityError:
            continue
        await state.watch.reach(seq, state.settings.read_your_writes_timeout_s)
        return result
    raise ApiError(503, "service_unavailable", f"workspace {workspace_id} is changing too fast; try again")


@post("/admin/workspaces", status_code=201, opt={**ADMIN, ERRORS: {409: "A workspace with this id exists."}})
async def create_workspace(request: Request[Any, Any, Any], data: JSONBody[NewWorkspace]) -> IssuedKey:
    state = gateway_state(request)
    workspace_id = data.workspace_id or new_workspace_id()
    workspace = Workspace.create(workspace_id, data.name or workspace_id)
    api_key = workspace.issue_key(data.key_label or "first key")
    try:
        seq = await asyncio.to_thread(state.store.save, [workspace])
    except IntegrityError:
        raise ApiError(409, "workspace_exists", f"workspace {workspace_id} already exists") from None
    await state.watch.reach(seq, state.settings.read_your_writes_timeout_s)
    return IssuedKey(workspace_id=workspace_id, key_id=key_id_of(api_key), api_key=api_key)


@get("/admin/workspaces/{workspace_id:str}", opt=ADMIN)
async def show_workspace(request: Request[Any, Any, Any], workspace_id: FromPath[str]) -> WorkspaceInfo:
    state = gateway_state(request)
    found = await workspace_reads.workspace(state.pool, workspace_id)
    if found is None:
        raise ApiError(404, "Not found", f"workspace {workspace_id} not found")
    keys = [msgspec.convert(k, KeyInfo) for k in await workspace_reads.workspace_keys(state.pool, workspace_id)]
    return WorkspaceInfo(workspace_id=workspace_id, name=found["name"], created_at=found["createdAt"], keys=keys)


@post("/admin/workspaces/{workspace_id:str}/keys", status_code=201, opt=ADMIN)
async def issue_key(request: Request[Any, Any, Any], workspace_id: FromPath[str], data: JSONBody[NewKey]) -> IssuedKey:
    api_key = await change_workspace(gateway_state(request), workspace_id, lambda w: w.issue_key(data.label))
    return IssuedKey(workspace_id=workspace_id, key_id=key_id_of(api_key), api_key=api_key)


@delete("/admin/workspaces/{workspace_id:str}/keys/{key_id:str}", status_code=200, opt=ADMIN)
async def revoke_key(request: Request[Any, Any, Any], workspace_id: FromPath[str], key_id: FromPath[str]) -> Revoked:
    await change_workspace(gateway_state(request), workspace_id, lambda w: w.revoke_key(key_id))
    return Revoked(revoked=True)


@get(CONFIG)
async def get_config(request: Request[Any, Any, Any], workspace_id: FromPath[str]) -> dict[str, Any]:
    workspace_of(request, workspace_id)
    found = await workspace_reads.workspace(gateway_state(request).pool, workspace_id)
    return found["config"] if found else {}


@patch(CONFIG)
async def update_config(request: Request[Any, Any, Any], workspace_id: FromPath[str]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7396): given fields change, `null` removes one, the rest stays."""
    workspace_of(request, workspace_id)
    body = await request.body()
    if b"\\u0000" in body:
        # PostgreSQL's jsonb cannot hold it: stored, it would come back as something else.
        raise ApiError(400, "invalid_request", "the config must not contain U+0000")
    if len(body) > MAX_CONFIG_BYTES:
        raise ApiError(400, "invalid_request", f"a config patch is at most {MAX_CONFIG_BYTES} bytes")
    changes = decode_body(body)
    if not isinstance(changes, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    if _depth(changes) > MAX_CONFIG_DEPTH:
        raise ApiError(400, "invalid_request", f"the config nests deeper than {MAX_CONFIG_DEPTH} levels")

    def apply(workspace: Workspace) -> dict[str, Any]:
        merged = merge_patch(workspace.config, changes)
        check_config(merged)
        workspace.update_config(changes, merged)
        return merged

    return await change_workspace(gateway_state(request), workspace_id, apply)


def check_config(config: dict[str, Any]) -> None:
    """Refuses (400) a config a workspace may not hold: one too large for its event, or a known
    key of the wrong type or range (spec 001's and spec 003's routes write the same config)."""
    if len(msgspec.json.encode(config)) > MAX_CONFIG_BYTES:
        raise ApiError(400, "invalid_request", f"the config would be larger than {MAX_CONFIG_BYTES} bytes of JSON")
    try:
        msgspec.convert(config, OrchestrationConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", f"config: {exc}") from None


def key_id_of(api_key: str) -> str:
    parts = split_key(api_key)
    assert parts is not None  # issued here, so well formed
    return parts[0]


PURGED = ["todos", "events", "budgets", "tool_logs", "session_ids", "caches"]


@post("/api/v1/workspaces/{workspace_id:str}/orchestration/purge", status_code=200)
async def purge(request: Request[Any, Any, Any], workspace_id: FromPath[str]) -> Purged:
    """Spec 001's reset. The purge is an event: the history stays in the event store, seq keeps
    increasing, and a rebuild from the log gives the same purged read models."""
    workspace_of(request, workspace_id)
    state = gateway_state(request)
    # Everything written so far is in the read models, so the unfinished tasks are all known.
    await state.reach_head()
    unfinished = await task_reads.unfinished_tasks(state.pool, workspace_id)
    # An orchestration run still going is stopped as a task is: it is the task its steps' Runs name.
    unfinished += await orchestration_runs.unfinished(state.pool, workspace_id)
    questions = [q["id"] for q in await question_reads.open_questions(state.pool, workspace_id)]
    await change_workspace(state, workspace_id, lambda w: w.purge(PURGED, unfinished, questions))
    return Purged(purged=PURGED)


MAX_CONFIG_DEPTH = 32
# Its change event carries the whole config and the patch: both fit in one bus message, with room.
MAX_CONFIG_BYTES = 65_536


def _depth(value: Any, level: int = 1) -> int:
    if level > MAX_CONFIG_DEPTH:
        return level
    children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return max((_depth(child, level + 1) for child in children), default=level)


def merge_patch(target: Any, patch_: Any) -> Any:
    if not isinstance(patch_, dict):
        return patch_
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch_.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def document(openapi: OpenAPI) -> None:
    """The config routes decode their JSON by hand (a merge patch), so Litestar sees no body and
    types the config as any object: the document says what they take and give."""
    config = register(openapi, OrchestrationConfig)
    item = (openapi.paths or {})[CONFIG.replace(":str", "")]
    assert item.get is not None and item.patch is not None
    item.patch.request_body = RequestBody(
        required=True,
        description=(
            "A JSON merge patch (RFC 7396) of the config: a key given changes, `null` removes it, the rest "
            "stays. Known keys are checked as OrchestrationConfig; any other key is kept as given. The patch "
            f"and the config it makes are at most {MAX_CONFIG_BYTES} bytes of JSON, nest at most "
            f"{MAX_CONFIG_DEPTH} levels and hold no U+0000."
        ),
        content={"application/json": OpenAPIMediaType(schema=config)},
    )
    for operation in (item.get, item.patch):
        assert operation.responses is not None
        operation.responses["200"].content = {"application/json": OpenAPIMediaType(schema=config)}


ROUTES = [create_workspace, show_workspace, issue_key, revoke_key, get_config, update_config, purge]
