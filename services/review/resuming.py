"""Spec 004's resume: a person's response to the gate an orchestration run is paused at.

Review records the response once, as an `InputGate` per pause, after checking it against the
step's fields (in the definition the run stored); the planner, the run's owner, then writes it
to the run's state and goes on. The gate is what makes a retried request safe: a resume that
says what the recorded one said answers again and resumes nothing, while any other resume of a
run that is not paused is refused.
"""

from __future__ import annotations

import msgspec
from eventsourcing.persistence import IntegrityError

from contracts.commands import CommandError, CommandReply, ResumeOrchestrationCommand
from contracts.orchestrations import HumanStep
from contracts.payloads.input_gate import InputGateOpened
from libs.domain.gate import InputGate, input_gate_id
from libs.domain.orchestration_run import FAILED, PAUSED, PURGED, OrchestrationRun, orchestration_run_id
from libs.eventstore.store import EventStore
from libs.orchestrations.responses import checked
from libs.orchestrations.stored import definition_of

MAX_RUN_ID = 200


def resume(raw: bytes, store: EventStore) -> CommandReply:
    try:
        command = msgspec.json.decode(raw, type=ResumeOrchestrationCommand)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return CommandReply(error=CommandError(400, "invalid_request", str(exc)))
    unknown = CommandReply(error=CommandError(404, "Not found", f"run {command.run_id[:MAX_RUN_ID]} not found"))
    if len(command.run_id) > MAX_RUN_ID:
        return unknown
    run = store.load(orchestration_run_id(command.run_id))
    if not isinstance(run, OrchestrationRun) or run.workspace_id != command.workspace_id:
        return unknown  # another workspace's run is as unknown as none
    if run.status == FAILED and run.response == PURGED:
        return unknown  # its workspace's purge cleared it, as it clears a task
    pause = run.paused
    if pause is None:
        return _not_paused(run)
    step = next(s for s in definition_of(store, run.workspace_id, run.definition.digest).steps if s.id == pause.step_id)
    assert isinstance(step, HumanStep)
    response = checked(step.fields, command.response)
    gate_id = input_gate_id(str(run.id), pause.gate)
    gate = store.load(gate_id)
    if gate is None and run.status == PAUSED:
        if isinstance(response, str):
            return CommandReply(error=CommandError(400, "invalid_request", response))
        opened = InputGateOpened(task_id=str(run.id), run_id=run.run_id, step_id=step.id, gate=pause.gate)
        gate = InputGate.open(run.workspace_id, opened)
        gate.answer(response)
        try:
            seq = store.save([gate])
        except IntegrityError:  # resumed by another request this very moment
            gate = store.load(gate_id)
        else:
            return CommandReply(seq=seq, run_id=run.run_id, status="resumed", gate=pause.gate)
    if isinstance(gate, InputGate) and gate.response == response:
        # The same resume again (a client's retry): nothing more to do; it waits as the first did.
        return CommandReply(run_id=run.run_id, status="resumed", gate=pause.gate)
    return _not_paused(run)


def _not_paused(run: OrchestrationRun) -> CommandReply:
    status = "running" if run.status == PAUSED else run.status  # paused, but resumed already
    message = f"run {run.run_id} is {status}, not paused at a human step"
    return CommandReply(error=CommandError(409, "run_not_paused", message))
