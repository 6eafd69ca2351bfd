"""Spec 004's orchestration definitions: named step lists over a shared state, as read from the
YAML files the gateway is configured with and as `GET /api/v1/orchestrations[/{orch_id}]` shows them.

Field names are spec 004's (snake_case on the wire). A step's `type` is its kind, as the spec's
`step_history` names it. Templates (`prompt`, `agent_context`) name state keys as `{{ key }}`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from contracts.tasks import DEFAULT_MODEL, NO_NUL, NonEmpty, Provider, RepoFiles, Text, check_paths

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
KEY_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
StateKeyName = Annotated[str, msgspec.Meta(pattern=KEY_PATTERN)]
Template = Annotated[str, msgspec.Meta(min_length=1, max_length=20_000, pattern=NO_NUL)]
# The repository tools (libs/agent/tools.py), over the files a state key of type `files` holds.
RepositoryTool = Literal["list_files", "read_file", "search", "write_file", "delete_file"]
# A loop goes round at most this often, whatever a definition asks.
MAX_VISITS_LIMIT = 100
DEFAULT_MAX_TURNS = 8


class StateKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # `files`: a mapping of path to content, the repository the tools of an agent step work on.
    type: Literal["string", "number", "boolean", "files"] = "string"
    description: Text = ""


class AgentStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type", tag="agent"):
    id: Id
    name: NonEmpty
    prompt: Template
    output: StateKeyName  # the state key the agent's answer is written to
    model: NonEmpty = DEFAULT_MODEL
    provider: Provider = Provider.ANTHROPIC
    max_turns: Annotated[int, msgspec.Meta(ge=1, le=100)] = DEFAULT_MAX_TURNS
    tools: list[RepositoryTool] = []
    files: StateKeyName | None = None  # the state key of type `files` the tools work on


class HumanField(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: StateKeyName  # the state key the answer is written to
    type: Literal["text", "select", "number", "bool"]
    label: NonEmpty
    required: bool = True
    options: list[NonEmpty] = []  # a select's choices, and only a select's


class HumanStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type", tag="human"):
    id: Id
    name: NonEmpty
    prompt: Template
    fields: Annotated[list[HumanField], msgspec.Meta(min_length=1)]
    agent_context: Template | None = None  # what the person is shown of the agents' work


class ConditionStep(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type", tag="condition"
):
    """Goes to `goto` when state `key` equals `equals`, else on to the next step. A step is
    entered at most `max_visits` times in a run, so a loop back ends."""

    id: Id
    name: NonEmpty
    key: StateKeyName
    equals: str | float | bool
    goto: Id
    max_visits: Annotated[int, msgspec.Meta(ge=1, le=MAX_VISITS_LIMIT)] = 3


Step = AgentStep | HumanStep | ConditionStep


class Orchestration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One definition file: its state keys in order (a run's `message` goes to the first)."""

    id: Id
    name: NonEmpty
    description: Text = ""
    state_schema: Annotated[dict[StateKeyName, StateKey], msgspec.Meta(min_length=1)]
    steps: Annotated[list[Step], msgspec.Meta(min_length=1)]
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0)] | None = None


class OrchestrationDetail(Orchestration, frozen=True, kw_only=True):
    """`GET /api/v1/orchestrations/{orch_id}`: the definition and the digest (SHA-256 of its
    canonical JSON) a run records, so a later edit never changes what a past run did."""

    digest: str


class OrchestrationSummary(msgspec.Struct, frozen=True):
    """An entry of `GET /api/v1/orchestrations`: `steps` is how many."""

    id: str
    name: str
    description: str
    steps: int


class RunOrchestration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/v1/orchestrations/{orch_id}/run`: the message goes to the first state key, and
    `files` (an extension to spec 004: the repository the run starts from, path -> content, as a
    task's `repo.files`) to the first state key of type `files`; a definition with none refuses
    them with a 400."""

    message: Annotated[str, msgspec.Meta(max_length=100_000, pattern=NO_NUL)]
    max_cost_usd: Annotated[float, msgspec.Meta(gt=0)] | None = None  # this run's, over the definition's
    files: RepoFiles | None = None

    def __post_init__(self) -> None:
        check_paths(self.files or {})


class ResumeOrchestration(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/v1/orchestrations/runs/{run_id}/resume`: the response to the gate the run is
    paused at, field name -> value (a plain string when the gate has a single text field)."""

    response: dict[str, Any] | str


class StepHistoryEntry(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    step_name: str
    type: str
    status: str
    turns: int
    cost_usd: float


class HumanInputRequired(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    prompt: str
    fields: list[dict[str, Any]]  # each: name, type, label (a select's options joined by commas)
    agent_context: str | None = None


class OrchestrationRunAnswer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Spec 004's three answers of a run: `completed` (response, shared_state, step_history),
    `paused` (human_input_required), `failed` (the reason in response). A run still going when
    the wait ends answers `running` with its run_id."""

    status: Literal["completed", "paused", "failed", "running"]
    run_id: str
    response: str | None = None
    shared_state: dict[str, Any] | None = None
    step_history: list[StepHistoryEntry] | None = None
    human_input_required: HumanInputRequired | None = None
