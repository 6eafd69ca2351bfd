"""Souls (spec 002): a workspace's document for each agent name, set by a key holder, read and
validated by the agent sessions of that name. Only a valid document is stored; the runtime
service is the single writer of souls."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Request, get, post, put
from litestar.params import FromPath, JSONBody

from contracts.agent_context import SoulSummary
from contracts.payloads.agent_soul import AgentSoulSet
from libs.domain.agent_session import AgentSession
from libs.domain.agent_soul import AgentSoul, soul_id
from libs.eventstore.store import EventStore
from libs.soul.document import DEFAULT_SOURCE_PATH, parse
from libs.soul.model import DEFAULT_LIMITS, Soul
from libs.soul.view import SoulView, config_provenance, soul_summary, soul_view
from libs.web.auth import workspace_of
from libs.web.diagnostics import AgentError
from libs.web.errors import ApiError
from services.runtime.auth import SESSION_ERRORS, session_of
from services.runtime.state import runtime_state

# The soul settings in force: the product's defaults (a workspace's own come with its config).
PROVENANCE = config_provenance(DEFAULT_LIMITS, enabled=True, source="default")
AgentName = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
SourcePath = Annotated[str, msgspec.Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f]+$")]
WRITE_ATTEMPTS = 5


class SoulDocument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A soul to store (`PUT`), or to validate without storing (`POST .../soul/validate`, where
    no `document` means the one stored for the session's agent name)."""

    document: str | None = None
    source_path: SourcePath = DEFAULT_SOURCE_PATH


@put("/api/v1/workspaces/{workspace_id:str}/agent-souls/{agent_name:str}", status_code=200)
async def set_soul(
    request: Request[Any, Any, Any],
    workspace_id: FromPath[str],
    agent_name: FromPath[str],
    data: JSONBody[SoulDocument],
) -> SoulView:
    """Stores the soul of the workspace's agents called `agent_name`, when it is valid: a 400
    otherwise, naming each error by line and column."""
    state = runtime_state(request)
    workspace_of(request, workspace_id)
    name = _agent_name(agent_name)
    if data.document is None:
        raise ApiError(400, "invalid_request", "document: a soul to store is required")
    soul = parse(data.document, data.source_path)
    if not soul.valid:
        problems = "; ".join(f"{d.source_path}:{d.line}:{d.column}: {d.code}: {d.message}" for d in soul.errors)
        raise ApiError(400, "invalid_soul", f"the soul is not valid: {problems}")
    revision = AgentSoulSet(agent_name=name, document=data.document, digest=soul.digest, source_path=data.source_path)
    stored = await _store(state.store, workspace_id, revision)
    return _view(soul, name, stored)


@get("/api/agent/soul", opt=SESSION_ERRORS)
async def get_soul(request: Request[Any, Any, Any]) -> SoulView:
    """The soul of the calling session's agent name (`present: false` when none is set)."""
    session = session_of(request)
    name = session.details.agent_name
    stored = await _load(runtime_state(request).store, session.workspace_id, name)
    if stored is None:
        return _view(parse(None), name, None)
    return _view(parse(stored.current.document, stored.current.source_path), name, stored)


@post("/api/agent/soul/validate", status_code=200, opt=SESSION_ERRORS)
async def validate_soul(request: Request[Any, Any, Any], data: JSONBody[SoulDocument]) -> SoulView:
    """A soul checked, not stored: the one given, or the one stored for the session's agent name.
    An invalid document is an answer here (its diagnostics), not an error."""
    session = session_of(request)
    name = session.details.agent_name
    if data.document is not None:
        return _view(parse(data.document, data.source_path), name, None)
    stored = await _load(runtime_state(request).store, session.workspace_id, name)
    if stored is None:
        return _view(parse(None), name, None)
    return _view(parse(stored.current.document, stored.current.source_path), name, stored)


async def summary_of(store: EventStore, session: AgentSession) -> SoulSummary:
    """The soul of the session's agent name in short (`context.soul`)."""
    stored = await _load(store, session.workspace_id, session.details.agent_name)
    soul = parse(stored.current.document, stored.current.source_path) if stored else parse(None)
    return soul_summary(soul, provenance=PROVENANCE, snapshot_id=soul.digest or None)


def _agent_name(given: str) -> str:
    try:
        return msgspec.convert(given, AgentName)
    except msgspec.ValidationError:
        raise ApiError(
            400, "invalid_request", "agent_name: letters, digits, '.', '_' and '-', starting with a letter or digit"
        ) from None


async def _load(store: EventStore, workspace_id: str, agent_name: str) -> AgentSoul | None:
    found = await asyncio.to_thread(store.load, soul_id(workspace_id, agent_name))
    return found if isinstance(found, AgentSoul) else None


async def _store(store: EventStore, workspace_id: str, revision: AgentSoulSet) -> AgentSoul:
    """The new revision saved (nothing when it is the one stored), again on fresh state when
    another replica wrote in between."""
    for _ in range(WRITE_ATTEMPTS):
        soul = await _load(store, workspace_id, revision.agent_name)
        if soul is None:
            soul = AgentSoul.first(workspace_id, revision)
        else:
            soul.set(revision)
        try:
            await asyncio.to_thread(store.save, [soul])
        except IntegrityError:
            continue
        return soul
    raise AgentError(503, "service_unavailable", f"the soul of {revision.agent_name} is changing too fast; try again")


def _view(soul: Soul, agent_name: str, stored: AgentSoul | None) -> SoulView:
    return soul_view(
        soul,
        agent_name=agent_name,
        provenance=PROVENANCE,
        created_at=stored.modified_on.isoformat() if stored else None,
        revision_id=f"{stored.id}:{stored.version}" if stored else None,
        snapshot_id=soul.digest or None,
    )
