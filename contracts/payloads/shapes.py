"""The nested shapes several payloads share: files by digest, a run's output, a task's changes,
a step's summary, a budget cap. Their keys are the wire's (camelCase where the events write
camelCase), so a payload converts from the stored JSON as it is.

Events stored before blobs existed carry a file's content inline (a string where a ref now
is, `libs.eventstore.blobs`): a files map takes both, so an old log still converts.
"""

from __future__ import annotations

import msgspec

from contracts.files import FileRef

# path -> the file by digest (or, in an event stored before blobs, its content).
Files = dict[str, FileRef | str]


class ReviewNote(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A review agent's comment on a line of a file."""

    path: str
    body: str
    line: int | None = None


class RunOutput(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", omit_defaults=True, forbid_unknown_fields=True
):
    """A run's changes: the files it wrote, its summary, and (when there are any) the files it
    deleted and a review agent's comments."""

    files: Files
    # Always written, "" included (the executor writes it so): a factory default, which
    # `omit_defaults` keeps, where a plain `""` would drop an empty summary from the JSON.
    summary: str = msgspec.field(default_factory=str)
    deleted_files: list[str] = []
    comments: list[ReviewNote] = []


class Changes(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A task's changes relative to its repository (a later subtask's version of a file wins)."""

    files: Files
    deleted: list[str]


class StepSummary(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """What one finished subtask did, as the next agent and the pull request's body read it."""

    subtask_id: str
    agent_type: str
    summary: str | None


class PlannedSubtask(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    id: str
    agent_type: str
    description: str
    dependencies: list[str]


class SubtaskResult(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """A subtask's success, as the task records it."""

    subtask_id: str
    agent_type: str
    success: bool
    output: RunOutput
    duration_ms: int
    attempts: int = 1


class BudgetCap(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The budget cap a model call would have crossed: which (`workspace` / `task`), its limit,
    what was spent against it, and what the call could have cost (USD)."""

    cap: str
    limit_usd: float
    spent_usd: float
    estimate_usd: float


class Payload(msgspec.Struct, frozen=True, kw_only=True):
    """An event's payload: the fields its event carries. A field added after events were stored
    has a default, and a field an older event carried that is gone since is passed over, so
    every stored event still converts: one that did not would stop a reader of the whole log
    (the projector) for every workspace. The AsyncAPI document still says exactly the fields
    emitted (`additionalProperties: false`, added by `exports.asyncapi`)."""
