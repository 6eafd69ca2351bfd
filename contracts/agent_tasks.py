"""Spec 002's task leases (`/api/agent/tasks/*`): the claim an agent session takes from the
queue, and the calls it makes under the claim's lease. Keys are snake_case, times RFC 3339.

A claim's token is returned once, in the claim; the holder presents it as `claim_token` in the
body of every call under the lease (the stored form, shown by the views, is `claim_token_hash`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from contracts.agent_runtime import ChannelView, Name

TTL_S = Annotated[int, msgspec.Meta(ge=1, le=3600, description="Lease length in seconds (1 to 3600).")]
Token = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
Tokens = Annotated[int, msgspec.Meta(ge=0, le=10**12)]
MAX_RESULT_FILES = 1000
MAX_FILE_CHARS = 2 * 1024 * 1024
UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class ClaimNext(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /api/agent/tasks/claim-next`: the oldest ready run this session may take."""

    # Only runs of these agent types (of those the session's capabilities allow, when it declared any).
    agent_types: Annotated[list[Name], msgspec.Meta(max_length=100)] = []
    capabilities: Annotated[list[Name], msgspec.Meta(max_length=100)] = []  # the same filter, by another name
    lease_ttl_seconds: TTL_S = 30
    # Long-poll: wait up to this long for a run to become ready (0: answer 204 at once).
    wait_seconds: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0
    # This queued run only (a container worker claims the run it was started for).
    run_id: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)] | None = None


class Usage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the agent's model calls used, priced by the cost ledger like the executor's."""

    model: Annotated[str, msgspec.Meta(max_length=200)] = ""  # "" : the session's model
    input_tokens: Tokens = 0
    output_tokens: Tokens = 0
    cache_read_tokens: Tokens = 0
    cache_write_tokens: Tokens = 0
    calls: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0  # model and tool calls made


class RunResult(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the run produced: the files it wrote or changed (path -> whole content), those it
    deleted, a summary of what it did, and what it used."""

    files: Annotated[
        dict[
            Annotated[str, msgspec.Meta(min_length=1, max_length=1024)],
            Annotated[str, msgspec.Meta(max_length=MAX_FILE_CHARS)],
        ],
        msgspec.Meta(max_length=MAX_RESULT_FILES),
    ] = {}
    deleted_files: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]], msgspec.Meta(max_length=MAX_RESULT_FILES)
    ] = []
    summary: Annotated[str, msgspec.Meta(max_length=20_000)] = ""
    usage: Usage = Usage()


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    claim_token: Token
    lease_ttl_seconds: TTL_S | None = None  # None: the claim's length


class Complete(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    claim_token: Token
    result: RunResult


class Fail(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    claim_token: Token
    error: Annotated[str, msgspec.Meta(min_length=1, max_length=20_000)]
    retryable: bool = True  # another attempt may succeed (up to the task's maxRetries)
    usage: Usage = Usage()


class Release(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    claim_token: Token
    reason: Annotated[str, msgspec.Meta(max_length=2000)] | None = None
    usage: Usage = Usage()


# --- views -----------------------------------------------------------------------------------


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # "agent_session" | "executor" | "system"
    ref: str


class LeaseView(msgspec.Struct, frozen=True, kw_only=True):
    claim_token_hash: str
    claimed_by: Actor
    coordination_channel: ChannelView
    coordination_channel_id: str
    heartbeat_at: datetime | None
    lease_until: datetime
    run_id: str
    session_id: str
    status: str  # "claimed" | "completed" | "failed" | "released" | "expired" | "budget_stopped"
    task_id: str


class RunView(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    claim_token_hash: str
    claimed_at: datetime
    claimed_by: Actor
    coordination_channel: ChannelView
    coordination_channel_id: str
    ended_at: datetime | None
    error: str | None
    failure_kind: str | None  # "checks" | "agent" | "lease_expired" | "budget"
    heartbeat_at: datetime | None
    id: str
    idempotency_key: str | None
    lease_until: datetime
    metadata: dict[str, Any] | None
    network_channel: str | None
    origin: Actor
    previous_run_id: str | None
    queued_at: datetime | None
    result: dict[str, Any] | None
    session_id: str
    started_at: datetime
    status: str
    task_id: str


class TaskRef(msgspec.Struct, frozen=True, kw_only=True):
    effective_paused: bool
    id: str
    identifier: str
    latest_event_seq: int
    owner: Actor
    paused: bool
    paused_by_task_id: str | None
    priority: str
    scope: str
    status: str
    title: str
    workspace_id: str


class FileToFetch(msgspec.Struct, frozen=True, kw_only=True):
    digest: str
    size: int
    url: str  # `GET` it with the session token: `{"digest", "size", "content"}`


class EarlierStep(msgspec.Struct, frozen=True, kw_only=True):
    subtask_id: str
    agent_type: str
    summary: str | None


class PreviousAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """The failed attempt this one retries: its error, and the changes it starts from."""

    error: str | None
    files: dict[str, FileToFetch]
    deleted_files: list[str]
    summary: str


class RunInput(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the agent needs to do the run: what to do, the files it starts from (the
    previous attempt's changes applied), what the subtasks it depends on did, the task's config."""

    subtask_id: str
    agent_type: str
    description: str
    attempt: int
    files: dict[str, FileToFetch]
    earlier: list[EarlierStep]
    previous: PreviousAttempt | None
    config: dict[str, Any]


class ClaimView(msgspec.Struct, frozen=True, kw_only=True):
    task: TaskRef
    run: RunView
    lease: LeaseView
    coordination_channel: ChannelView
    claim_token: str  # shown this once: present it as `claim_token` under the lease
    input: RunInput


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    claim: ClaimView


class LeaseAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """What `heartbeat`, `complete`, `fail` and `release` answer: the lease, and its run."""

    lease: LeaseView
    run: RunView
