"""A read soul as spec 002 shows it: the body of `GET /api/agent/soul` and of
`POST /api/agent/soul/validate`, and the short summary in an agent's context view.

The document gives most fields; the caller gives what only it knows (the agent's name, when the
revision was stored, the snapshot it belongs to, the soul settings in force). Field names are
the spec's, so the service encodes these Structs as they are.
"""

from __future__ import annotations

import hashlib

import msgspec

from contracts.agent_context import SoulSummary
from libs.soul.model import Soul, SoulDiagnostic, SoulFrontmatter, SoulLimits, ValidationStatus


class SoulConfigProvenance(msgspec.Struct, frozen=True):
    """The soul settings in force and where they came from (a default, a workspace's config)."""

    enabled: bool
    max_body_bytes: int
    context_projection_bytes: int
    source: str
    digest: str  # of the settings alone: the same settings from another source digest the same


def config_provenance(limits: SoulLimits, *, enabled: bool, source: str) -> SoulConfigProvenance:
    settings = {"enabled": enabled, **msgspec.structs.asdict(limits)}
    # Sorted keys: the digest depends on the values, never on the order fields were declared in.
    digest = "sha256:" + hashlib.sha256(msgspec.json.encode(dict(sorted(settings.items())))).hexdigest()
    return SoulConfigProvenance(
        enabled=enabled,
        max_body_bytes=limits.max_body_bytes,
        context_projection_bytes=limits.context_projection_bytes,
        source=source,
        digest=digest,
    )


class SoulView(msgspec.Struct, frozen=True):
    agent_name: str
    present: bool
    enabled: bool
    active: bool  # enabled and valid: the soul shapes the agent's prompt now
    valid: bool
    validation_status: ValidationStatus
    source_path: str
    digest: str
    frontmatter: SoulFrontmatter
    body: str
    truncated: bool
    limits: SoulLimits
    diagnostics: tuple[SoulDiagnostic, ...]
    config_provenance: SoulConfigProvenance
    created_at: str | None  # RFC 3339, when this revision was stored; None for a draft or none
    revision_id: str | None
    snapshot_id: str | None


def soul_view(
    soul: Soul,
    *,
    agent_name: str,
    provenance: SoulConfigProvenance,
    created_at: str | None = None,
    revision_id: str | None = None,
    snapshot_id: str | None = None,
) -> SoulView:
    return SoulView(
        agent_name=agent_name,
        present=soul.present,
        enabled=provenance.enabled,
        active=provenance.enabled and soul.valid,
        valid=soul.valid,
        validation_status=soul.validation_status,
        source_path=soul.source_path,
        digest=soul.digest,
        frontmatter=soul.frontmatter,
        body=soul.body,
        truncated=soul.truncated,
        limits=soul.limits,
        diagnostics=soul.diagnostics,
        config_provenance=provenance,
        created_at=created_at,
        revision_id=revision_id,
        snapshot_id=snapshot_id,
    )


def soul_summary(soul: Soul, *, provenance: SoulConfigProvenance, snapshot_id: str | None = None) -> SoulSummary:
    return SoulSummary(
        present=soul.present,
        enabled=provenance.enabled,
        active=provenance.enabled and soul.valid,
        valid=soul.valid,
        validation_status=soul.validation_status,
        source_path=soul.source_path,
        digest=soul.digest,
        config_digest=provenance.digest,
        role=soul.frontmatter.role,
        tone=soul.frontmatter.tone,
        principles=soul.frontmatter.principles,
        truncated=soul.truncated,
        max_bytes=soul.limits.max_bytes,
        max_body_bytes=soul.limits.max_body_bytes,
        snapshot_id=snapshot_id,
    )
