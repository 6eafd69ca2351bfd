"""Every domain event's payload, one frozen msgspec Struct per event type (issue 15, decision 3),
one module per aggregate, and `PAYLOADS`: the Struct of each wire type (`task.subtask_dispatched`,
named as `libs.domain.base.EventTypes` names it).

The aggregates in `libs/domain` still declare their events' fields themselves; a test
(`tests/unit/test_payloads.py`) keeps the two in step until they emit these Structs.
"""

from __future__ import annotations

import msgspec

from contracts.payloads import gate, ledger, pull_request, question_gate, run, schedule, task, workspace

PAYLOADS: dict[str, type[msgspec.Struct]] = dict(
    sorted(
        {
            **task.PAYLOADS,
            **run.PAYLOADS,
            **gate.PAYLOADS,
            **question_gate.PAYLOADS,
            **ledger.PAYLOADS,
            **pull_request.PAYLOADS,
            **schedule.PAYLOADS,
            **workspace.PAYLOADS,
        }.items()
    )
)
