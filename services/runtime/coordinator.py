"""A workspace's coordinator settings (spec 002): `coordinator` in its config (set with the
gateway's `PATCH .../orchestration/config`), else the product's defaults. They are the spawn
budget a session gets when it is made without one of its own, and what
`GET /api/agent/coordinator/config` and `me` show."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import QueryParameter
from psycopg_pool import AsyncConnectionPool

from contracts.agent_runtime import CoordinatorView
from contracts.agent_spawn import Coordinator
from contracts.payloads.agent_session import SpawnBudget
from contracts.workspaces import CoordinatorSettings
from libs.readmodels import workspace_reads
from libs.web.diagnostics import AgentError
from libs.web.openapi import ERRORS
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.state import runtime_state

# Without a `coordinator` in the workspace's config: a few helpers each, two levels deep, an
# hour to live, and a ceiling on the workspace's sessions that stops a runaway tree of spawns.
DEFAULTS = CoordinatorSettings(
    enabled=True,
    agent_name="coordinator",
    max_children=4,
    max_spawn_depth=2,
    max_active_sessions_per_workspace=32,
    default_ttl_seconds=3600,
)


@dataclass(frozen=True)
class WorkspaceCoordinator:
    view: CoordinatorView
    max_spawn_depth: int

    def default_budget(self) -> SpawnBudget:
        """What a session made without a budget may spawn: nothing when the coordinator is off."""
        v = self.view
        return SpawnBudget(
            max_children=v.max_children if v.enabled else 0,
            max_depth=self.max_spawn_depth if v.enabled else 0,
            max_active_per_workspace=v.max_active_sessions_per_workspace,
            ttl_seconds=v.default_ttl_seconds,
        )


async def coordinator_of(pool: AsyncConnectionPool, workspace_id: str) -> WorkspaceCoordinator:
    found = await workspace_reads.workspace(pool, workspace_id)
    return coordinator_from(workspace_id, (found or {}).get("config") or {})


def coordinator_from(workspace_id: str, config: dict[str, Any]) -> WorkspaceCoordinator:
    """The settings a workspace's config gives (`coordinator`), the product's defaults for the rest."""
    given = config.get("coordinator")
    try:
        # The gateway checked it when it was set: this only fails on a config from before.
        own = msgspec.convert(given, CoordinatorSettings) if isinstance(given, dict) else None
    except msgspec.ValidationError:
        own = None
    settings = msgspec.structs.replace(
        DEFAULTS, **{k: v for k, v in msgspec.structs.asdict(own).items() if v is not None} if own else {}
    )
    assert settings.max_children is not None and settings.max_spawn_depth is not None
    assert settings.max_active_sessions_per_workspace is not None and settings.default_ttl_seconds is not None
    view = CoordinatorView(
        agent_name=settings.agent_name or "",
        default_ttl_seconds=settings.default_ttl_seconds,
        enabled=bool(settings.enabled),
        max_active_sessions_per_workspace=settings.max_active_sessions_per_workspace,
        max_children=settings.max_children,
        # The workspace's task defaults when the coordinator names none.
        model=settings.model or str(config.get("defaultModel") or ""),
        provider=str(settings.provider or config.get("defaultProvider") or ""),
        source="workspace" if own is not None else "default",
        workspace_id=workspace_id,
    )
    return WorkspaceCoordinator(view=view, max_spawn_depth=settings.max_spawn_depth)


@get(
    "/api/agent/coordinator/config",
    opt={ERRORS: {**SESSION_ERRORS[ERRORS], 404: "The workspace is not the session's."}},
)
async def coordinator_config(
    request: Request[Any, Any, Any],
    workspace: Annotated[
        str | None, QueryParameter(description="Workspace id (the session's)", min_length=1, max_length=500)
    ] = None,
) -> Coordinator:
    """The coordinator settings of the calling session's workspace."""
    session = session_of(request)
    if workspace is not None and workspace != session.workspace_id:
        raise AgentError(
            404,
            "workspace_not_found",
            f"workspace {workspace} not found",
            evidence={"workspace": workspace},
            suggested_command="GET /api/agent/coordinator/config (the session's own workspace)",
        )
    found = await coordinator_of(runtime_state(request).pool, session.workspace_id)
    return Coordinator(coordinator=found.view)
