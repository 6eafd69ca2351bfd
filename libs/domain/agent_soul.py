"""AgentSoul: a workspace's soul document for one agent name (spec 002), owned by the runtime
service. Each revision is an event; the current one is the last set."""

from __future__ import annotations

from uuid import UUID

import msgspec

from contracts.payloads.agent_soul import AgentSoulCreated, AgentSoulSet
from libs.domain.base import WorkspaceAggregate, derived_id


def soul_id(workspace_id: str, agent_name: str) -> UUID:
    return derived_id("soul", workspace_id, agent_name)


class AgentSoul(WorkspaceAggregate):
    class Created(WorkspaceAggregate.Created):
        payload: AgentSoulCreated

    def __init__(self, workspace_id: str, payload: AgentSoulCreated) -> None:
        self.workspace_id = workspace_id
        self.current: AgentSoulSet = payload

    @classmethod
    def first(cls, workspace_id: str, revision: AgentSoulSet) -> AgentSoul:
        created = AgentSoulCreated(**msgspec.structs.asdict(revision))
        return cls._create(
            cls.Created, id=soul_id(workspace_id, revision.agent_name), workspace_id=workspace_id, payload=created
        )

    def set(self, revision: AgentSoulSet) -> None:
        if revision.digest != self.current.digest or revision.source_path != self.current.source_path:
            self.emit(self.Set, revision)

    class Set(WorkspaceAggregate.Event):
        payload: AgentSoulSet

        def apply(self, soul: AgentSoul) -> None:
            soul.current = self.payload
