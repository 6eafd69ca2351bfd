"""The aggregates' event classes carry the payload Structs (`contracts.payloads`), each its wire
type's; and every event of a task's whole life, as the store keeps it (JSON), converts to its
Struct with `typed`."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import msgspec
import pytest
from eventsourcing.domain import Aggregate

from contracts.events import Event, EventEnvelope, UnknownEventType, typed
from contracts.payloads import PAYLOADS
from contracts.payloads.agent_session import PermissionPolicy
from contracts.payloads.agent_soul import AgentSoulSet
from contracts.payloads.github_installation import GithubInstallationLinked
from contracts.payloads.input_gate import InputGateOpened
from contracts.payloads.intake_request import IntakeRequestRefused, IntakeRequestTaskCreated
from contracts.payloads.ledger import LedgerCharged
from contracts.payloads.run import RunFailed, RunStarted
from contracts.payloads.shapes import BudgetCap, Payload, PlannedSubtask, RunOutput, SubtaskResult
from contracts.payloads.task import TaskSubtaskDispatched
from contracts.payloads.webhook_delivery import WebhookDeliveryReceived
from contracts.payloads.worker_machine import WorkerMachineReported, WorkerMachineStarted
from contracts.questions import QuestionItem, QuestionOption, ToolRef
from exports.asyncapi import event_classes
from libs.domain.agent_session import AgentSession
from libs.domain.agent_soul import AgentSoul
from libs.domain.base import EventTypes, event_payload, payload_type
from libs.domain.channel import Channel, parse_name
from libs.domain.gate import Gate, InputGate, QuestionGate
from libs.domain.github_account import GitHubAccount
from libs.domain.github_installation import GitHubInstallation
from libs.domain.intake_request import IntakeRequest
from libs.domain.ledger import Ledger
from libs.domain.orchestration_run import OrchestrationRun
from libs.domain.pull_request import PullRequest
from libs.domain.run import LEASE_EXPIRED, Claim, Run
from libs.domain.schedule import Schedule, slot
from libs.domain.task import Task
from libs.domain.webhook_delivery import WebhookDelivery
from libs.domain.worker_machine import WorkerMachine
from libs.domain.workspace import Workspace


def test_every_event_class_has_a_payload_struct_and_no_struct_is_without_one() -> None:
    assert set(event_classes()) == set(PAYLOADS)


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_an_event_class_carries_its_wire_types_payload_struct_and_nothing_else(event_type: str) -> None:
    cls, struct = event_classes()[event_type], PAYLOADS[event_type]

    assert EventTypes.name(cls) == event_type
    assert payload_type(cls) is struct
    # Its one field besides the envelope's (`workspace_id`, eventsourcing's own) is the payload.
    envelope = {"originator_id", "originator_version", "timestamp", "originator_topic", "workspace_id"}
    assert [f.name for f in dataclasses.fields(cls) if f.name not in envelope] == ["payload"]
    assert issubclass(struct, Payload)
    # The store writes a payload's fields flat, by their names, every one (`libs.eventstore.mapper`).
    assert struct.__struct_encode_fields__ == struct.__struct_fields__
    assert not struct.__struct_config__.omit_defaults
    # Frozen; and tolerant of a field an older event carried (the document is the strict side).
    assert struct.__struct_config__.frozen and not struct.__struct_config__.forbid_unknown_fields
    # One name per Struct, from its wire type: `run.model_called` is RunModelCalled.
    assert struct.__name__ == "".join(p.capitalize() for p in event_type.replace(".", "_").split("_"))


# --- a task's whole life, every aggregate's events, through the store's JSON -----------------

WORKSPACE = "ws-payloads"
REF = {"digest": "sha256:" + "ab" * 32, "size": 12}
USAGE = {"input_tokens": 100, "output_tokens": 50, "cache_read_tokens": 0, "cache_write_tokens": 0}
CAP = BudgetCap(cap="task", limit_usd=1.0, spent_usd=0.9, estimate_usd=0.2)
MODEL = "claude-sonnet-4-20250514"


def _request() -> dict[str, Any]:
    repo = {"owner": "acme", "repo": "app", "branch": "feature", "baseBranch": "main", "files": {"a.py": REF}}
    config = {"model": MODEL, "provider": "anthropic", "maxRetries": 1}
    return {"description": "Add a greeting", "agentType": "codegen", "repo": repo, "config": config}


PLAN = [
    PlannedSubtask(id="aaaa0001", agent_type="codegen", description="Add a greeting", dependencies=[]),
    PlannedSubtask(id="bbbb0002", agent_type="test", description="Test it", dependencies=["aaaa0001"]),
]


def _output(summary: str) -> RunOutput:
    return msgspec.convert({"files": {"b.py": REF}, "summary": summary, "deletedFiles": ["old.py"]}, RunOutput)


def a_whole_life() -> list[Aggregate]:
    """Every aggregate through every event it emits, as the services drive them."""
    workspace = Workspace.create(WORKSPACE, "payloads")
    key = workspace.issue_key("ci")
    workspace.update_config({"maxConcurrentSubtasks": 1}, {"maxConcurrentSubtasks": 1})
    workspace.revoke_key(key.split("_")[1])
    workspace.set_secret("anthropic_api_key", "v1.c2VhbGVk", "wxyz")
    workspace.clear_secret("anthropic_api_key")

    schedule = Schedule.open(WORKSPACE)
    task = Task.submit(uuid.uuid4(), WORKSPACE, _request(), [])
    tid = str(task.id)
    task.request_plan()
    task.record_plan(PLAN, "template", "no model configured", None, "anthropic", MODEL, 0)
    first = slot(tid, "aaaa0001")
    assert schedule.request(first, 1)
    assert not schedule.request(slot(tid, "other"), 1)
    schedule.finish(first)
    schedule.next_to_start(1)

    runs = []
    run = Run.start(WORKSPACE, tid, "aaaa0001", "codegen", 1, "anthropic", MODEL)
    run.record_model_call(1, True, 40, USAGE, "tool_use", 1, None)
    run.record_tool_call("call-1", "write", True, "write b.py", "b.py", 3, None)
    run.start_model_call(2, {"input_tokens": 10, "output_tokens": 4096})
    run.fail("checks failed", USAGE, 90, 2, retryable=True, output=_output("first try"))
    runs.append(run)
    task.start()
    task.attempt_failed("aaaa0001", str(run.id), 1, "checks failed", True, _output("first try"))
    retry = Run.start(WORKSPACE, tid, "aaaa0001", "codegen", 2, "anthropic", MODEL, retry_of="checks failed")
    retry.succeed(_output("greets"), USAGE, 120, 3)
    runs.append(retry)
    task.record_success("aaaa0001", str(retry.id), _result("aaaa0001", "greets"))
    task.dispatch_ready()

    stopped = Run.start(WORKSPACE, tid, "bbbb0002", "test", 1, "anthropic", MODEL)
    stopped.stop_for_budget(CAP, "pause", USAGE, 30, 1, _output("half"))
    runs.append(stopped)
    task.pause("bbbb0002", str(stopped.id), 1, CAP, _output("half"))
    task.resume(gate=lambda _task, _subtask: False)  # queued: the workspace's cap is reached
    task.release("bbbb0002")
    interrupted = Run.start(WORKSPACE, tid, "bbbb0002", "test", 2, "anthropic", MODEL)
    interrupted.interrupt({"input_tokens": 10, "output_tokens": 100})
    runs.append(interrupted)
    lease = Claim(session_id=None, lease_until=1_700_000_030_000, lease_ttl_s=30, token_hash="h" * 64)
    lapsed = Run.start(WORKSPACE, tid, "bbbb0002", "test", 3, "anthropic", MODEL, claim=lease)
    lapsed.expire(1_700_000_030_000)
    runs.append(lapsed)
    task.attempt_failed("bbbb0002", str(lapsed.id), 3, LEASE_EXPIRED, True, None, lease_expired=True)
    held = Claim(session_id="s-1", lease_until=1_700_000_060_000, lease_ttl_s=30, token_hash="h" * 64, dispatch_seq=9)
    given_back = Run.start(WORKSPACE, tid, "bbbb0002", "test", 4, "anthropic", MODEL, claim=held)
    given_back.release("busy", {}, 5)
    runs.append(given_back)
    task.run_released("bbbb0002", str(given_back.id))
    last = Run.start(WORKSPACE, tid, "bbbb0002", "test", 4, "anthropic", MODEL, handover=1)
    last.succeed(_output("tested"), USAGE, 80, 2)
    runs.append(last)
    task.record_success("bbbb0002", str(last.id), _result("bbbb0002", "tested"))
    task.request_review()

    question = QuestionGate.ask(
        WORKSPACE, "que_" + "0" * 32, tid, str(last.id),
        [QuestionItem(question="Which?", header="Pick", options=[QuestionOption(label="a")], custom=True)],
        ToolRef(message_id="m1", call_id="c1"), 1_700_000_000_000, "bbbb0002", "test",
    )  # fmt: skip
    question.answer([["a"]])
    expired = QuestionGate.ask(WORKSPACE, "que_" + "1" * 32, tid, str(last.id), [], ToolRef("m", "c"), 1)
    expired.expire()

    gate = Gate.open_review(WORKSPACE, tid)
    gate.decide("approve", None)
    task.approve(None)
    pull = PullRequest.opened(WORKSPACE, tid, "https://github.com/acme/app/pull/1", 1)
    task.complete("https://github.com/acme/app/pull/1", None)
    ledger = Ledger.open(WORKSPACE, tid)
    ledger.charge(str(retry.id), "aaaa0001", MODEL, 100, 50, 0, 0, 0.0021, 120, 3, True)

    child = Task.submit(uuid.uuid4(), WORKSPACE, {**_request(), "parentTaskId": tid}, list(PLAN))
    task.link_child(str(child.id))
    child.start_after_parent(task)
    child.cancel("the workspace was purged")
    revised = Task.submit(uuid.uuid4(), WORKSPACE, _request(), list(PLAN), revision_of=tid)
    _to_review(revised)
    revised.revise("use a constant", uuid.uuid4())
    failed = Task.submit(uuid.uuid4(), WORKSPACE, _request(), list(PLAN))
    failed.dispatch_ready()
    failed.attempt_failed("aaaa0001", "run-x", 1, "no", False, None)
    retried_id = uuid.uuid4()
    failed.retry(retried_id)
    retried = Task.submit(retried_id, WORKSPACE, failed.rerun_request(), list(PLAN), retry_of=str(failed.id))
    retried.stop("stopped on request")

    workspace.purge(["tasks"], [str(child.id)], ["que_" + "1" * 32])
    others = [PullRequest.skipped(WORKSPACE, str(child.id), "the task changed no files")]
    others.append(PullRequest.failed(WORKSPACE, str(revised.id), "422 Unprocessable"))
    session, _ = AgentSession.create(WORKSPACE, "worker", "coder", "m", "anthropic", ["codegen"])
    child_session, _ = session.spawn("reviewer", "review", PermissionPolicy(), True, 1_900_000_000_000)
    session.stop("stopped_by_user", "done for the day")
    child_session.stop("parent_stopped", "its parent stopped")
    soul = AgentSoul.first(WORKSPACE, AgentSoulSet(agent_name="coder", document="v1", digest="d1", source_path="S.md"))
    soul.set(AgentSoulSet(agent_name="coder", document="v2", digest="d2", source_path="S.md"))
    others += [session, child_session, soul]
    channel = Channel.open(WORKSPACE, parse_name(f"task_{tid}"), tid, str(session.id))  # type: ignore[arg-type]
    asked = channel.send(str(session.id), "question", {"text": "which file?"}, {"tag": "t"})
    channel.send(str(session.id), "answer", "b.py", {}, reply_to=asked.message_id)
    others += [session, soul, channel, *_orchestration_runs(), *_github(), _worker_machine()]
    life = [workspace, schedule, task, *runs, question, expired, gate, pull, ledger, child, revised, failed, retried]
    return [*life, *others]


def _github() -> list[GitHubAccount | GitHubInstallation | WebhookDelivery | IntakeRequest]:
    account = GitHubAccount.link(WORKSPACE, 583231, "octocat")
    account.sign_in("octo-cat")
    linked = GithubInstallationLinked(
        installation_id=40_000_001,
        app_id=1,
        account="acme",
        account_type="Organization",
        repository_selection="all",
        linked_by="github:octocat",
    )
    received = WebhookDeliveryReceived(
        delivery_id="72d3162e-cc78-11e3-81ab-4c9367dc0958",
        installation_id=40_000_001,
        owner="acme",
        repo="shop",
        issue_number=7,
        issue_title="Validate input",
        issue_body="The form accepts anything.",
        comment_id=9001,
        commenter="octocat",
        agent_type="codegen",
        description="add input validation",
    )
    created = IntakeRequest.task_created(
        WORKSPACE,
        IntakeRequestTaskCreated(
            delivery_id=received.delivery_id,
            task_id=str(uuid.uuid4()),
            installation_id=40_000_001,
            owner="acme",
            repo="shop",
            issue_number=7,
        ),
    )
    created.replied("task_created", 9002)
    created.replied("completed", 9003)
    refused = IntakeRequest.refused(
        WORKSPACE,
        IntakeRequestRefused(
            delivery_id="another",
            installation_id=40_000_001,
            owner="acme",
            repo="shop",
            issue_number=7,
            reason="octocat may only read acme/shop",
        ),
    )
    refused.replied("refused", 9004)
    intake = [created, refused]
    return [account, GitHubInstallation.link(WORKSPACE, linked), WebhookDelivery.receive(WORKSPACE, received), *intake]


def _worker_machine() -> WorkerMachine:
    machine = WorkerMachine.start(
        WORKSPACE,
        WorkerMachineStarted(
            task_id=str(uuid.uuid4()),
            run_id=str(uuid.uuid4()),
            subtask_id="s1",
            dispatch_seq=42,
            app="acme-workers",
            region="ams",
            machine_id="3d8d9e1f2a4b58",
            machine_name="run-1",
            session_id=str(uuid.uuid4()),
            callback_token_hash="ab" * 32,
            claim_by=1_700_000_000_000,
        ),
    )
    machine.reported(WorkerMachineReported(status="succeeded", metadata={"machineId": "3d8d9e1f2a4b58", "turns": 3}))
    machine.destroy("reported")
    return machine


def _orchestration_runs() -> list[OrchestrationRun | InputGate]:
    from contracts.files import FileRef
    from contracts.payloads.orchestration_run import (
        OrchestrationRunPaused,
        OrchestrationRunResumed,
        OrchestrationRunStepCompleted,
        OrchestrationRunStepDispatched,
        OrchestrationRunStepRetried,
    )

    definition = FileRef(digest=REF["digest"], size=12)
    run = OrchestrationRun.start(WORKSPACE, "run_orch-a_1", "orch-a", REF["digest"], definition, "hi", "query", 0.5)
    run.start_step("step-one", "One", "agent")
    run.dispatch_step(
        OrchestrationRunStepDispatched(
            subtask_id="step-one@1", agent_type="orchestration", description="Say hi", files={},
            config={"model": MODEL, "provider": "anthropic"}, attempt=1, run_id="r-1",
        )
    )  # fmt: skip
    run.retry_step(
        OrchestrationRunStepRetried(step_id="step-one", step_run_id="r-1", attempt=1, reason="lease expired", turns=1),
        OrchestrationRunStepDispatched(
            subtask_id="step-one@1", agent_type="orchestration", description="Say hi", files={},
            config={"model": MODEL, "provider": "anthropic"}, attempt=2, run_id="r-2", previous_run_id="r-1",
        ),
    )  # fmt: skip
    run.complete_step(OrchestrationRunStepCompleted(step_id="step-one", output="answer", value="hi", turns=1))
    run.start_step("step-ok", "OK?", "human")
    run.pause(
        OrchestrationRunPaused(
            step_id="step-ok", prompt="OK?", fields=[{"name": "ok", "type": "bool"}], gate="step-ok@1"
        )
    )
    opened = InputGateOpened(task_id=str(run.id), run_id=run.run_id, step_id="step-ok", gate="step-ok@1")
    gate = InputGate.open(WORKSPACE, opened)
    gate.answer({"ok": True})
    run.resume(OrchestrationRunResumed(step_id="step-ok", gate="step-ok@1", values={"ok": True}))
    run.fail("stopped")
    done = OrchestrationRun.start(WORKSPACE, "run_orch-a_2", "orch-a", REF["digest"], definition, "hi", "query", None)
    done.complete("orch-a complete")
    return [run, gate, done]


def _result(subtask_id: str, summary: str) -> SubtaskResult:
    return SubtaskResult(
        subtask_id=subtask_id, agent_type="codegen", success=True, output=_output(summary), duration_ms=9, attempts=1
    )


def _to_review(task: Task) -> None:
    while ready := task.ready_subtasks():
        for subtask in ready:
            task.dispatch(subtask)
            task.start()
            task.record_success(subtask.id, f"run-{subtask.id}", _result(subtask.id, "done"))
    task.request_review()


def envelopes(aggregates: list[Aggregate]) -> list[EventEnvelope]:
    """Each aggregate's pending events as the store and the bus carry them (JSON payloads)."""
    found = []
    for seq, event in enumerate((e for a in aggregates for e in a.collect_events()), start=1):
        payload = msgspec.json.decode(msgspec.json.encode(event_payload(event)))
        found.append(
            EventEnvelope(seq, EventTypes.name(type(event)), WORKSPACE, str(event.originator_id), 1, 0, payload)
        )
    return found


def test_every_event_of_a_whole_life_converts_to_its_payload_struct() -> None:
    life = envelopes(a_whole_life())

    for envelope in life:
        event = typed(envelope)
        assert isinstance(event, Event)
        assert type(event.payload) is PAYLOADS[envelope.type]
        # Nothing lost or added: the Struct encodes back to the payload the store holds.
        assert msgspec.json.decode(msgspec.json.encode(event.payload)) == envelope.payload, envelope.type
    assert {e.type for e in life} == set(PAYLOADS), "the life covers every event type"


def test_an_event_stored_before_a_field_existed_converts_with_its_default() -> None:
    started = {"task_id": "t", "subtask_id": "s", "agent_type": "codegen", "attempt": 1, "provider": "p", "model": "m"}
    event = typed(EventEnvelope(1, "run.started", WORKSPACE, "r", 1, 0, started))
    assert event.payload == RunStarted(**started, retry_of=None)

    failed = {"task_id": "t", "subtask_id": "s", "provider": "p", "model": "m", "error": "boom", "usage": {}}
    payload = typed(EventEnvelope(2, "run.failed", WORKSPACE, "r", 2, 0, failed)).payload
    assert isinstance(payload, RunFailed)
    assert (payload.agent_type, payload.attempt, payload.retryable, payload.estimated_usage) == ("", 1, False, None)


def test_a_file_stored_before_blobs_converts_as_its_content() -> None:
    dispatched = {
        "subtask_id": "s", "agent_type": "codegen", "description": "d", "files": {"a.py": "print(1)\n", "b.py": REF},
        "config": {}, "attempt": 1,
    }  # fmt: skip
    payload = typed(EventEnvelope(1, "task.subtask_dispatched", WORKSPACE, "t", 2, 0, dispatched)).payload
    assert isinstance(payload, TaskSubtaskDispatched)
    assert payload.files["a.py"] == "print(1)\n"
    assert payload.files["b.py"].digest == REF["digest"]  # type: ignore[union-attr]
    assert payload.earlier == [] and payload.previous_output is None


def test_a_field_an_older_event_carried_is_passed_over_and_the_document_refuses_it() -> None:
    # A field that was dropped since is still in the events stored before.
    old = typed(EventEnvelope(1, "task.failed", WORKSPACE, "t", 2, 0, {"error": "x", "dropped_since": 1}))
    assert msgspec.to_builtins(old.payload) == {"error": "x"}
    from exports.asyncapi import document

    schemas = document("test")["components"]["schemas"]
    assert all(schemas[struct.__name__]["additionalProperties"] is False for struct in PAYLOADS.values())


def test_a_payload_its_struct_refuses_or_an_unknown_type_raises() -> None:
    with pytest.raises(msgspec.ValidationError):
        typed(EventEnvelope(1, "task.failed", WORKSPACE, "t", 2, 0, {"error": 1}))
    with pytest.raises(UnknownEventType):
        typed(EventEnvelope(1, "task.unheard_of", WORKSPACE, "t", 2, 0, {}))
    assert RunOutput(files={}).summary == ""


# --- the first consumer on typed events: the cost-ledger ----------------------------------------


class _NoLedgers:
    def load_many(self, ids: Any) -> dict[Any, Any]:
        return {}


def test_the_cost_ledger_charges_from_typed_events() -> None:
    from libs.pricing import PriceTable
    from services.cost_ledger.handlers import on_events

    life = envelopes(a_whole_life())
    ledgers = on_events(life, _NoLedgers(), PriceTable({}))  # type: ignore[arg-type]

    charged = [
        event_payload(e) for ledger in ledgers for e in ledger.collect_events() if isinstance(e.payload, LedgerCharged)
    ]
    ends = ("succeeded", "failed", "stopped", "expired", "released")
    charging = [e for e in life if e.type.startswith("run.") and e.type.endswith(ends)]
    assert {c["run_id"] for c in charged} == {e.aggregate_id for e in charging}  # the plan used no model
    interrupted = [c for c in charged if c["estimated"]]
    assert len(interrupted) == 1 and interrupted[0]["subrequests"] == 1
