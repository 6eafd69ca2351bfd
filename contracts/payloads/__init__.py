"""Every domain event's payload, one frozen msgspec Struct per event type (issue 15, decision 3),
one module per aggregate, and `PAYLOADS`: the Struct of each wire type (`task.subtask_dispatched`,
named as `libs.domain.base.EventTypes` names it).

The one definition of each payload: the aggregates in `libs/domain` emit these Structs (each
event class's one field, `payload`, is typed with its wire type's Struct, which a test checks),
the store keeps them as flat JSON beside the envelope fields (`libs.eventstore.mapper`), every
consumer and projection reads them (`contracts.events.typed`), and the AsyncAPI document is
generated from them (`exports.asyncapi`).
"""

from __future__ import annotations

import msgspec

from contracts.payloads import (
    agent_session,
    agent_soul,
    channel,
    gate,
    github_account,
    github_installation,
    input_gate,
    intake_request,
    ledger,
    orchestration_run,
    pull_request,
    question_gate,
    run,
    schedule,
    task,
    webhook_delivery,
    worker_machine,
    workspace,
)

PAYLOADS: dict[str, type[msgspec.Struct]] = dict(
    sorted(
        {
            **task.PAYLOADS,
            **agent_session.PAYLOADS,
            **agent_soul.PAYLOADS,
            **channel.PAYLOADS,
            **run.PAYLOADS,
            **gate.PAYLOADS,
            **github_account.PAYLOADS,
            **github_installation.PAYLOADS,
            **input_gate.PAYLOADS,
            **intake_request.PAYLOADS,
            **question_gate.PAYLOADS,
            **ledger.PAYLOADS,
            **orchestration_run.PAYLOADS,
            **pull_request.PAYLOADS,
            **schedule.PAYLOADS,
            **webhook_delivery.PAYLOADS,
            **worker_machine.PAYLOADS,
            **workspace.PAYLOADS,
        }.items()
    )
)
