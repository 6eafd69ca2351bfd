"""The payloads of an OrchestrationRun's events (owner: the planner): `orchestration_run.<event>`
on the wire. A run of one of spec 004's definitions, step by step over a shared state
(docs/orchestrations.md)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.files import FileRef
from contracts.payloads.shapes import Changes, Payload
from contracts.payloads.task import TaskSubtaskDispatched


class OrchestrationRunStarted(Payload, frozen=True, kw_only=True):
    run_id: str  # spec 004's: `run_<orchestration id>_<ms>`
    orchestration_id: str
    digest: str  # the definition's ("sha256:<hex>" of its canonical JSON)
    # The definition itself, stored once as a blob by that same digest: a later edit of its
    # file never changes what this run does or did.
    definition: FileRef
    message: str
    max_cost_usd: float | None = None  # the run's own limit, else the definition's
    # The state the run starts from: the message under the first key, and the run's files (by
    # digest: `path -> {"digest", "size"}`, stored once as blobs) under its first files key.
    shared_state: dict[str, Any]


class OrchestrationRunStepStarted(Payload, frozen=True, kw_only=True):
    step_id: str
    step_name: str
    type: str  # "agent" | "human" | "condition"
    visit: int = 1  # the how-manieth time the run enters this step


class OrchestrationRunStepDispatched(TaskSubtaskDispatched, frozen=True, kw_only=True):
    """An agent step's Run to make: a `task.subtask_dispatched`'s shape (the rendered prompt as
    `description`, the step's `files` key as `files`), so the executor and agent sessions run it
    as they run a subtask, and the Run's `task_id` is this orchestration run's id."""

    # The step's repository tools: only these (and `finish`) are offered to the agent. None, in a
    # dispatch stored before steps named their tools: the agent type's whole set.
    tools: list[str] | None = None


class OrchestrationRunStepRetried(Payload, frozen=True, kw_only=True):
    """An agent step's Run ended without doing the step (it failed and may be tried again, its
    lease expired, or its holder gave it back) and the step is dispatched again: what that Run
    spent is the step's too, so the step's turns and cost add up over its attempts."""

    step_id: str
    step_run_id: str  # the Run that ended
    attempt: int
    reason: str  # its error, or why its holder gave it back
    turns: int = 0  # its model calls
    cost_usd: float = 0.0  # its usage, priced as the ledger prices it


class OrchestrationRunStepCompleted(Payload, frozen=True, kw_only=True):
    step_id: str
    output: str | None = None  # the state key written (none for a condition)
    # What was written there: inline when short. A longer answer (over a few KiB:
    # `libs.orchestrations.values`) is stored once as a blob, with this event, and named by
    # `value_ref` (`value` is then null); the files endpoint serves it by that digest. An event
    # stored before long answers were blobs has it inline, however long.
    value: Any = None
    value_ref: FileRef | None = None
    turns: int = 0  # the agent's model calls, over all the step's attempts
    cost_usd: float = 0.0  # likewise
    step_run_id: str | None = None  # the executor's Run that did it
    next_step: str | None = None  # a condition's branch: the step it goes to (None: the next one)
    # What an agent step with the writing tools changed in the state's files key `files_key`:
    # the files it wrote, by digest (the Run's output names them: no content is copied), and
    # those it deleted. A files key holds `path -> {"digest", "size"}`.
    files_key: str | None = None
    changes: Changes | None = None


class OrchestrationRunPaused(Payload, frozen=True, kw_only=True):
    """At a human step: what the person is asked (spec 004's `human_input_required`)."""

    step_id: str
    prompt: str
    fields: list[dict[str, Any]]
    agent_context: str | None = None
    gate: str = ""  # which pause of the run this is ("<step_id>@<visit>"): the gate a resume answers


class OrchestrationRunResumed(Payload, frozen=True, kw_only=True):
    """A person answered the run's gate (review's `input_gate.answered`): each field's value is
    written to its state key, and the human step is completed."""

    step_id: str
    gate: str
    values: dict[str, Any]


class OrchestrationRunCompleted(Payload, frozen=True, kw_only=True):
    response: str


class OrchestrationRunFailed(Payload, frozen=True, kw_only=True):
    reason: str
    step_id: str | None = None  # the step it failed at
    turns: int = 0  # what that step spent before it failed, over all its attempts
    cost_usd: float = 0.0


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "orchestration_run.started": OrchestrationRunStarted,
    "orchestration_run.step_started": OrchestrationRunStepStarted,
    "orchestration_run.step_dispatched": OrchestrationRunStepDispatched,
    "orchestration_run.step_retried": OrchestrationRunStepRetried,
    "orchestration_run.step_completed": OrchestrationRunStepCompleted,
    "orchestration_run.paused": OrchestrationRunPaused,
    "orchestration_run.resumed": OrchestrationRunResumed,
    "orchestration_run.completed": OrchestrationRunCompleted,
    "orchestration_run.failed": OrchestrationRunFailed,
}
