"""The payloads of an orchestration's human-input Gate (owner: review): `input_gate.<event>` on
the wire. A person's answer to a `human` step of a spec 004 run, recorded once (docs/orchestrations.md)."""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.payloads.shapes import Payload


class InputGateOpened(Payload, frozen=True, kw_only=True):
    # The orchestration run's aggregate id: the planner finds the run by it, as it finds the run
    # a step's Run belongs to.
    task_id: str
    run_id: str  # spec 004's run_id
    step_id: str
    gate: str  # which pause of the run: "<step_id>@<visit>"


class InputGateAnswered(Payload, frozen=True, kw_only=True):
    task_id: str
    run_id: str
    step_id: str
    gate: str
    # Field name -> value, checked against the step's fields (an optional field not given: null).
    response: dict[str, Any]


PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "input_gate.opened": InputGateOpened,
    "input_gate.answered": InputGateAnswered,
}
