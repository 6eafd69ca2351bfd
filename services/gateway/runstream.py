"""Spec 004's streamed runs: one run's events, followed from the log, as SSE in spec 004's nine
types (docs/orchestrations.md §3).

The story of a run is the events of its `OrchestrationRun` and of its agent steps' Runs (learned
from each `step_dispatched`), read by aggregate in the log's order: a page, then a sleep until
the projector says something was appended (or a second passed). Every frame's `id:` is its
event's seq, so a client that drops picks the run up again from spec 001's events feed with
`since_seq` = the last id it got, and misses nothing. The stream ends, with `done`, once the run
completes, fails, or pauses at a gate.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from uuid import UUID

import msgspec

from contracts.events import EventEnvelope, UnknownEventType, typed
from contracts.payloads.orchestration_run import (
    OrchestrationRunCompleted,
    OrchestrationRunFailed,
    OrchestrationRunPaused,
    OrchestrationRunResumed,
    OrchestrationRunStepCompleted,
    OrchestrationRunStepDispatched,
    OrchestrationRunStepStarted,
)
from contracts.payloads.run import RunModelCalled, RunToolCalled
from libs.domain.orchestration_run import OrchestrationRun
from libs.readmodels.run_files import with_contents
from libs.web.sse import CONNECTED, KEEPALIVE_S
from services.gateway.state import GatewayState

PAGE = 500
POLL_S = 1.0  # a read even without a notice: with the projector stopped, the stream still moves
STEP_COMPLETED = "orchestration_run.step_completed"
# How a step's Run ends: its events stop there, and it is followed no longer.
RUN_ENDS = frozenset({"run.succeeded", "run.failed", "run.budget_stopped", "run.lease_expired", "run.released"})
_encoder = msgspec.json.Encoder()


class Frame(msgspec.Struct, frozen=True):
    seq: int
    type: str
    data: dict[str, Any]

    def encode(self) -> bytes:
        # msgspec's JSON has no raw newlines, so the data fits one `data:` line.
        return b"id: %d\nevent: %s\ndata: %s\n\n" % (self.seq, self.type.encode(), _encoder.encode(self.data))


class Final(msgspec.Struct, frozen=True):
    """A completed run's state (its files keys with their contents, as the synchronous answer
    shows them) and step history."""

    shared_state: dict[str, Any]
    step_history: list[dict[str, Any]]


def _final(state: GatewayState, run_uuid: UUID) -> Final | None:
    run = state.store.load(run_uuid)
    if not isinstance(run, OrchestrationRun):
        return None
    shown = with_contents(state.store.blobs, run.workspace_id, run.shared_state)
    return Final(shared_state=shown, step_history=msgspec.to_builtins(run.step_history))


class Story:
    """What has been read of one run: the aggregates followed, where the reading stands, the
    step each step Run does, and whether the stream has reached the part the client asked for."""

    def __init__(self, run_uuid: UUID, run_id: str, past_gate: str | None) -> None:
        self.run_id = run_id
        self.followed = [run_uuid]
        self.last = 0
        self.steps: dict[str, dict[str, str]] = {}  # step id -> its name and type
        self.past_gate = past_gate  # a resume's stream starts after this pause
        self.ended: str | None = None  # "completed" | "failed" | "paused"

    def read(
        self, events: list[EventEnvelope], final: Final | None, answers: Mapping[str, str] | None = None
    ) -> tuple[list[Frame], bool]:
        """The frames of a page of events, and whether to read again at once (a new step Run is
        followed from here: its events interleave with the run's). `final`: the run as it ended,
        for `orchestration_complete`'s state; `answers`: the long answers the page's steps wrote
        (`answers_in`), by digest."""
        frames: list[Frame] = []
        for envelope in events:
            self.last = envelope.seq
            try:
                event = typed(envelope)
            except UnknownEventType:
                continue
            p = event.payload
            if isinstance(p, OrchestrationRunStepDispatched):
                self.followed.append(UUID(p.run_id))
                return frames, True
            if envelope.type in RUN_ENDS:
                ended = UUID(envelope.aggregate_id)
                self.followed = [i for i in self.followed if i != ended]
                continue
            if self.past_gate is not None:
                # A resume's stream starts after the pause it answered.
                if isinstance(p, OrchestrationRunPaused) and p.gate == self.past_gate:
                    self.past_gate = None
                if isinstance(p, OrchestrationRunStepStarted):
                    self.steps[p.step_id] = {"step_name": p.step_name, "type": p.type}
                continue
            frames.extend(self._frames(envelope.seq, p, final, answers or {}))
            if self.ended is not None:
                return frames, False
        return frames, len(events) == PAGE

    def _frames(self, seq: int, p: Any, final: Final | None, answers: Mapping[str, str]) -> list[Frame]:
        run_id = self.run_id
        match p:
            case OrchestrationRunStepStarted():
                self.steps[p.step_id] = {"step_name": p.step_name, "type": p.type}
                return [Frame(seq, "step_start", {"run_id": run_id, "step_id": p.step_id, **self.steps[p.step_id]})]
            case OrchestrationRunStepCompleted():
                # A long answer is a blob by digest: spec 004's `output` is the whole of it.
                output = p.value if p.value_ref is None else answers[p.value_ref.digest]
                done = {"status": "completed", "output_key": p.output, "output": output, "next_step": p.next_step}
                cost = {"turns": p.turns, "cost_usd": p.cost_usd}
                return [Frame(seq, "step_complete", {**self._step(p.step_id), **done, **cost})]
            case OrchestrationRunResumed():
                done = {"status": "completed", "output": p.values, "turns": 0, "cost_usd": 0.0}
                return [Frame(seq, "step_complete", {**self._step(p.step_id), **done})]
            case RunModelCalled():
                turn = {"turn": p.turn, "model": p.model, "status": p.status, "stop_reason": p.stop_reason}
                spent = {"tool_calls": p.tool_calls, "usage": p.usage, "duration_ms": p.duration_ms, "error": p.error}
                return [Frame(seq, "agent_turn", {**self._step(_step_of(p.subtask_id)), **turn, **spent})]
            case RunToolCalled():
                step = {"run_id": run_id, "step_id": _step_of(p.subtask_id), "tool_name": p.tool}
                result = {"status": p.status, "preview": p.title, "error": p.error}
                # The tool log records a call once it has returned: both frames come from that event.
                return [
                    Frame(seq, "tool_execution", {**step, "args": {"target": p.target}}),
                    Frame(seq, "tool_result", {**step, **result}),
                ]
            case OrchestrationRunPaused():
                self.ended = "paused"
                asked = {"step_id": p.step_id, "prompt": p.prompt, "fields": p.fields, "agent_context": p.agent_context}
                return [Frame(seq, "human_input_required", {"run_id": run_id, **asked})]
            case OrchestrationRunCompleted():
                self.ended = "completed"
                state = final.shared_state if final is not None else None
                history = final.step_history if final is not None else None
                answer = {"response": p.response, "final_state": state, "step_history": history}
                return [Frame(seq, "orchestration_complete", {"run_id": run_id, "status": "completed", **answer})]
            case OrchestrationRunFailed():
                self.ended = "failed"
                failed = {"status": "failed", "error": p.reason, "step_id": p.step_id}
                return [Frame(seq, "orchestration_error", {"run_id": run_id, **failed})]
        return []

    def _step(self, step_id: str) -> dict[str, Any]:
        return {"run_id": self.run_id, "step_id": step_id, **self.steps.get(step_id, {})}


def answers_in(events: list[EventEnvelope]) -> dict[str, set[str]]:
    """The digests of the long answers the events' steps wrote, by workspace."""
    found: dict[str, set[str]] = {}
    for e in events:
        ref = e.payload.get("value_ref") if e.type == STEP_COMPLETED else None
        if isinstance(ref, dict):
            found.setdefault(e.workspace_id, set()).add(ref["digest"])
    return found


def _answers(state: GatewayState, wanted: dict[str, set[str]]) -> dict[str, str]:
    return {d: text for ws, digests in wanted.items() for d, text in state.store.blobs.load(ws, digests).items()}


def _step_of(subtask_id: str) -> str:
    return subtask_id.rpartition("@")[0]  # an agent step's Run: `<step id>@<visit>`


async def follow(
    state: GatewayState, run_uuid: UUID, run_id: str, past_gate: str | None = None
) -> AsyncGenerator[bytes, None]:
    """The run's frames as SSE bytes, to its end (then `done`); `past_gate`: from after that pause."""
    yield CONNECTED
    story = Story(run_uuid, run_id, past_gate)
    idle = 0.0
    while True:
        position = state.watch.position
        events = await asyncio.to_thread(state.store.read_aggregates, story.followed, story.last, PAGE)
        final = None
        if any(e.type == "orchestration_run.completed" for e in events):
            final = await asyncio.to_thread(_final, state, run_uuid)
        wanted = answers_in(events)
        answers = await asyncio.to_thread(_answers, state, wanted) if wanted else None
        frames, again = story.read(events, final, answers)
        if frames:
            idle = 0.0
            yield b"".join(f.encode() for f in frames)
        if story.ended is not None:
            done = Frame(story.last, "done", {"run_id": run_id, "status": story.ended})
            yield done.encode()
            return
        if again:
            continue
        if not await state.watch.moved(position, POLL_S):
            idle += POLL_S
            if idle >= KEEPALIVE_S:
                idle = 0.0
                yield b": keep-alive\n\n"
