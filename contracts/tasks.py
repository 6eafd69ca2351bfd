"""Spec 000 wire bodies: task submission, task state, review, costs, errors.

Field names are the spec's (camelCase on the wire); Python attributes are snake_case and
`rename="camel"` maps them, so the code reads like Python and the JSON reads like the spec.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec

from contracts.repos import Branch, Owner, RepoName, path_problem, same_branch

DEFAULT_MODEL = "claude-sonnet-4-20250514"
DEFAULT_PROVIDER = "anthropic"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_TEMPERATURE = 0.0
# The spec leaves maxRetries' default open; three self-heal attempts is what its example shows.
DEFAULT_MAX_RETRIES = 3
MAX_TASKS_PER_REQUEST = 100


class AgentType(enum.StrEnum):
    CODEGEN = "codegen"
    TEST = "test"
    REVIEW = "review"
    REFACTOR = "refactor"
    DEBUG = "debug"
    DEPENDENCY = "dependency"


class TaskStatus(enum.StrEnum):
    PENDING = "pending"
    ASSIGNED = "assigned"
    RUNNING = "running"
    REVIEW = "review"
    APPROVED = "approved"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Not in spec 000: stopped by a budget cap before a model call would cross it; it goes on
    # by itself when the workspace's config raises the cap.
    PAUSED = "paused"


class Provider(enum.StrEnum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"


class AgentRuntime(enum.StrEnum):
    """Who runs the task's subtasks: the executor's agents or agent sessions, whichever claims
    first (`internal`), or only agent sessions, over spec 002's `claim-next` (`external`).
    Not in spec 000: an extension."""

    INTERNAL = "internal"
    EXTERNAL = "external"


class Runner(enum.StrEnum):
    """Where the task's agents run: in the executor's processes (`executor`), or each run in a
    container of its own on Fly.io (`fly`, spec 003: the workspace's Fly settings), whose
    worker claims the run as an agent session. Not in spec 000: an extension."""

    EXECUTOR = "executor"
    FLY = "fly"


class Planner(enum.StrEnum):
    """How a task is decomposed: the agent type's template plan, or a plan the model drafts
    (validated, with the template as the fallback). Not in spec 000: an extension."""

    TEMPLATE = "template"
    LLM = "llm"


class Decision(enum.StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    REVISE = "revise"


# PostgreSQL's text and jsonb cannot hold U+0000: refuse it at the edge rather than fail later.
NO_NUL = r"^[^\x00]*$"
Text = Annotated[str, msgspec.Meta(pattern=NO_NUL)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, pattern=NO_NUL)]
# What a person writes (a task's description, review feedback, an answer to an agent): the
# events that carry it can copy it (each step of a plan quotes the task's description), and
# every event must fit in one message on the bus. 64 Ki characters, as much as a GitHub issue.
MAX_TEXT = 65_536
Prose = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT, pattern=NO_NUL)]


# A repository's files as a body gives them: a task's, and an orchestration run's (spec 004).
RepoFiles = Annotated[
    dict[str, Text],
    msgspec.Meta(
        description=(
            "Each file's content by its path. A path is relative to the repository's root and "
            "`/`-separated, at most 4096 characters, with no empty, `.`, `..` or `.git` part and no "
            "backslash; any other is refused with a 400 naming it."
        )
    ),
]


def check_paths(files: dict[str, str]) -> None:
    """Raises ValueError naming the first path a repository may not hold: checked in a body's
    `__post_init__` rather than as the keys' type, so the refusal names the path and why."""
    for path in files:
        if (problem := path_problem(path)) is not None:
            raise ValueError(problem)


class RepoContext(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """A task's repository as submitted: its names go into GitHub API paths and its file paths
    into folders on disk, so each is checked (`contracts.repos`) before anything is stored."""

    owner: Owner
    repo: RepoName
    branch: Branch
    base_branch: Branch
    files: RepoFiles

    def __post_init__(self) -> None:
        check_paths(self.files)
        if self.branch == self.base_branch:
            # Found here, not at the pull request after the paid runs.
            raise ValueError(same_branch(self.branch))


class StoredRepo(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=False):
    """A repository as a task stored it: shown as it is, checked or not (a task stored before
    the names were checked at submission still reads back)."""

    owner: str
    repo: str
    branch: str
    base_branch: str
    files: dict[str, str]


class AgentConfig(msgspec.Struct, frozen=True, rename="camel", omit_defaults=False):
    model: NonEmpty = DEFAULT_MODEL
    provider: Provider = Provider.ANTHROPIC
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=200_000)] = DEFAULT_MAX_TOKENS
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] = DEFAULT_TEMPERATURE
    max_retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = DEFAULT_MAX_RETRIES
    planner: Planner = Planner.TEMPLATE
    agent_runtime: AgentRuntime = AgentRuntime.INTERNAL
    runner: Runner = Runner.EXECUTOR


class TaskRequest(msgspec.Struct, frozen=True, rename="camel"):
    description: Prose
    agent_type: AgentType
    repo: RepoContext
    config: AgentConfig = AgentConfig()
    parent_task_id: NonEmpty | None = None


class OriginalRequest(TaskRequest, frozen=True, rename="camel"):
    """A task's request as it was stored, shown in its state: a revision's description is the
    original's with the reviewer's feedback added, so the submission's limit does not hold."""

    description: NonEmpty
    repo: StoredRepo


class SubmitTasks(msgspec.Struct, frozen=True):
    tasks: Annotated[list[TaskRequest], msgspec.Meta(min_length=1, max_length=MAX_TASKS_PER_REQUEST)]


class TaskIds(msgspec.Struct, frozen=True, rename="camel"):
    task_ids: list[str]


class Subtask(msgspec.Struct, frozen=True, rename="camel"):
    id: str
    agent_type: AgentType
    description: str
    dependencies: list[str]


class ReviewComment(msgspec.Struct, frozen=True, omit_defaults=True):
    path: str
    body: str
    line: int | None = None


class AgentOutput(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    files: dict[str, str]
    summary: str
    # Extensions to spec 000's output: files the agent deleted, a reviewer's findings.
    deleted_files: list[str] = []
    comments: list[ReviewComment] = []


class CostBreakdown(msgspec.Struct, frozen=True, rename="camel"):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    estimated_cost_usd: float = 0.0
    cpu_time_ms: int = 0
    subrequests: int = 0
    # An extension to spec 000, omitted unless true, so a cost without an estimate reads as before.
    estimated: (
        Annotated[
            bool,
            msgspec.Meta(
                description="Present, and true, when the sums include an estimate rather than a provider's count: "
                "a model call an interrupted run had in flight, charged at its request's size / 4 input tokens "
                "and maxTokens output."
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class AgentResult(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    subtask_id: str
    agent_type: AgentType
    success: bool
    cost: CostBreakdown
    duration_ms: int
    output: AgentOutput | None = None
    error: str | None = None
    attempts: int = 1  # self-heal attempts it took (an extension to spec 000)


class TaskState(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    id: str
    status: TaskStatus
    request: OriginalRequest
    subtasks: list[Subtask]
    results: dict[str, AgentResult]
    cost: CostBreakdown
    created_at: int
    updated_at: int
    error: str | None = None
    pr_url: str | None = None
    revision_of: str | None = None
    revised_by: str | None = None
    # Extensions: the failed or cancelled task this one runs again (spec 003's retry), and the
    # task that runs this one again.
    retry_of: str | None = None
    retried_by: str | None = None
    plan: PlanInfo | None = None
    paused: PauseInfo | None = None


class PauseInfo(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """Why a task is paused (an extension to spec 000)."""

    subtask_id: str
    cap: str  # "workspace" | "task"
    limit_usd: float
    spent_usd: float
    estimate_usd: float


class PlanInfo(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """How the subtasks were planned (an extension to spec 000)."""

    source: Planner
    fallback_reason: str | None = None


class TaskEnvelope(msgspec.Struct, frozen=True):
    task: TaskState


class ReviewDecision(msgspec.Struct, frozen=True, rename="camel"):
    task_id: NonEmpty
    decision: Decision
    feedback: Annotated[str, msgspec.Meta(max_length=MAX_TEXT, pattern=NO_NUL)] | None = None


# Spec 000: feedback is required "for reject/revise" (the review service refuses a blank one). A
# Struct cannot say so: its JSON Schema and the OpenAPI document carry this rule beside it.
FEEDBACK_REQUIRED = {
    "if": {"properties": {"decision": {"enum": ["reject", "revise"]}}, "required": ["decision"]},
    "then": {"properties": {"feedback": {"type": "string", "pattern": r"\S"}}, "required": ["feedback"]},
}


class ReviewAccepted(msgspec.Struct, frozen=True):
    status: str


class TaskCost(msgspec.Struct, frozen=True, rename="camel"):
    task_id: str
    cost: CostBreakdown


class CostsReport(msgspec.Struct, frozen=True):
    tasks: list[TaskCost]
    aggregate: CostBreakdown


class Health(msgspec.Struct, frozen=True):
    service: str
    status: str
    version: str


class ErrorBody(msgspec.Struct, frozen=True):
    """Spec 000's error format: a short code and a human-readable message."""

    error: str
    message: str
