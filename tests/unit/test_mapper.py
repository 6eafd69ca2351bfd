"""The store's mapper (`libs.eventstore.mapper`): an event is its envelope and one payload Struct,
stored as the flat JSON the events table has always held. Events stored before the aggregates
emitted Structs load into the typed payload, and what is saved now is byte for byte what was
saved before for the same values (the literals below are what the code before wrote)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent

from contracts.files import FileRef
from contracts.payloads.shapes import BudgetCap, PlannedSubtask, RunOutput, StepSummary, SubtaskResult
from contracts.payloads.task import TaskSubmitted, TaskSubtaskDispatched
from contracts.questions import QuestionItem, QuestionOption, ToolRef
from libs.domain.gate import QuestionGate
from libs.domain.ledger import Ledger
from libs.domain.run import Run, run_id_for
from libs.domain.schedule import Schedule
from libs.domain.task import Task
from libs.eventstore.mapper import PayloadMapper
from libs.eventstore.store import OrchestratorApplication
from libs.eventstore.transcoder import MsgspecTranscoder

T = datetime(2025, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)
TASK_ID = uuid.UUID(int=1)
AB = "sha256:abababababababababababababababababababababababababababababababab"
CD = "sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"


@pytest.fixture
def mapper() -> PayloadMapper:
    return PayloadMapper(transcoder=MsgspecTranscoder())


def stored(version: int, topic: str, state: bytes) -> StoredEvent:
    return StoredEvent(originator_id=TASK_ID, originator_version=version, topic=topic, state=state)


# --- the log as the code before wrote it ------------------------------------------------------

# A task submitted before blobs existed: its repository's file inline, as its content.
OLD_SUBMITTED = (
    b'{"timestamp":"2024-11-02T08:00:00.500000Z","originator_topic":"libs.domain.task:Task","workspace_id":"ws-old",'
    b'"request":{"description":"Greet","agentType":"codegen","repo":{"owner":"acme","repo":"app",'
    b'"branch":"feature","baseBranch":"main","files":{"a.py":"print(1)\\n"}},"config":{"model":"m",'
    b'"provider":"anthropic"}},"subtasks":[{"id":"aaaa0001","agentType":"codegen","description":"Greet",'
    b'"dependencies":[]}],"revision_of":null}'
)
# Its dispatch, recorded later: one file by digest, one (from before blobs) as its content.
OLD_DISPATCHED = (
    b'{"timestamp":"2024-11-02T08:00:01.250000Z","workspace_id":"ws-old","subtask_id":"aaaa0001",'
    b'"agent_type":"codegen","description":"Greet","files":{"a.py":"print(1)\\n","b.py":{"digest":'
    b'"sha256:abababababababababababababababababababababababababababababababab","size":12}},'
    b'"config":{"model":"m","provider":"anthropic"},"attempt":1,"earlier":[],"previous_error":null,'
    b'"previous_output":null}'
)


def test_events_stored_the_old_way_load_into_their_typed_payloads(mapper: PayloadMapper) -> None:
    submitted = mapper.to_domain_event(stored(1, "libs.domain.task:Task.Submitted", OLD_SUBMITTED))
    dispatched = mapper.to_domain_event(stored(2, "libs.domain.task:Task.SubtaskDispatched", OLD_DISPATCHED))

    assert type(submitted) is Task.Submitted and type(submitted.payload) is TaskSubmitted
    assert submitted.payload.subtasks == [
        PlannedSubtask(id="aaaa0001", agent_type="codegen", description="Greet", dependencies=[])
    ]
    assert submitted.payload.request["repo"]["files"] == {"a.py": "print(1)\n"}, "the request is kept as sent"
    assert (submitted.originator_id, submitted.originator_version) == (TASK_ID, 1)
    assert submitted.originator_topic == "libs.domain.task:Task"
    assert submitted.timestamp == datetime(2024, 11, 2, 8, 0, 0, 500000, tzinfo=UTC)
    assert submitted.timestamp.tzinfo is not None and submitted.workspace_id == "ws-old"

    assert type(dispatched) is Task.SubtaskDispatched and type(dispatched.payload) is TaskSubtaskDispatched
    assert dispatched.payload.files == {"a.py": "print(1)\n", "b.py": FileRef(digest=AB, size=12)}
    assert dispatched.payload.earlier == [] and dispatched.payload.previous_output is None
    assert dispatched.timestamp == datetime(2024, 11, 2, 8, 0, 1, 250000, tzinfo=UTC)

    task = dispatched.mutate(submitted.mutate(None))
    assert isinstance(task, Task)
    assert (task.status, task.dispatched, task.workspace_id, task.version) == ("assigned", ["aaaa0001"], "ws-old", 2)
    # A file stored inline goes on as its content: the dispatch of a retry would name it so.
    assert task.base_files() == {"a.py": "print(1)\n"}

    # Saved again each would carry the fields added since, at their defaults (nothing rewrites
    # a stored event: this only shows no field of it is lost).
    assert mapper.to_stored_event(submitted).state == OLD_SUBMITTED[:-1] + SUBMIT_DEFAULTS + b"}"
    assert mapper.to_stored_event(dispatched).state == OLD_DISPATCHED[:-1] + DISPATCH_DEFAULTS + b"}"


# --- what the aggregates save now -------------------------------------------------------------

REF_AB = FileRef(digest=AB, size=12)
REF_CD = FileRef(digest=CD, size=3)
REQUEST: dict[str, Any] = {
    "description": "Add a greeting",
    "agentType": "codegen",
    "repo": {
        "owner": "acme",
        "repo": "app",
        "branch": "feature",
        "baseBranch": "main",
        "files": {"a.py": {"digest": AB, "size": 12}},
    },
    "config": {"model": "m", "provider": "anthropic", "maxRetries": 1},
}
PLAN = [
    PlannedSubtask(id="aaaa0001", agent_type="codegen", description="Add a greeting", dependencies=[]),
    PlannedSubtask(id="bbbb0002", agent_type="test", description="Test it", dependencies=["aaaa0001"]),
]

# The fields added since (spec 002's leases, spec 003's retry), last in the JSON, at their defaults.
SUBMIT_DEFAULTS = b',"retry_of":null'
DISPATCH_DEFAULTS = b',"run_id":null,"handover":0,"previous_run_id":null'
RUN_START_DEFAULTS = (
    b',"session_id":null,"lease_until":null,"lease_ttl_s":null,"claim_token_hash":null,"handover":0,'
    b'"dispatch_seq":null,"previous_run_id":null,"first_call_estimate":null'
)


def dispatch_fields(subtask_id: str, attempt: int) -> bytes:
    """What a dispatch carries since leases: the run that takes it, and no handover yet."""
    run_id = run_id_for(str(TASK_ID), subtask_id, attempt)
    return b',"run_id":"%s","handover":0,"previous_run_id":null' % str(run_id).encode()


# What the code before stored for the same values (each event's JSON, as the table holds it),
# with the fields added since.
HEAD = b'{"timestamp":"2025-03-01T12:30:45.123456Z",'
WS = b'"workspace_id":"ws-1"'
REF_AB_JSON = b'{"digest":"sha256:abababababababababababababababababababababababababababababababab","size":12}'
REF_CD_JSON = b'{"digest":"sha256:cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd","size":3}'
CONFIG = b'"config":{"model":"m","provider":"anthropic","maxRetries":1}'
TID = b'"00000000-0000-0000-0000-000000000001"'
BEFORE = [
    HEAD + b'"originator_topic":"libs.domain.task:Task",' + WS + b',"request":{"description":"Add a greeting",'
    b'"agentType":"codegen","repo":{"owner":"acme","repo":"app","branch":"feature","baseBranch":"main",'
    b'"files":{"a.py":' + REF_AB_JSON + b"}}," + CONFIG + b'},"subtasks":[{"id":"aaaa0001","agentType":"codegen",'
    b'"description":"Add a greeting","dependencies":[]},{"id":"bbbb0002","agentType":"test",'
    b'"description":"Test it","dependencies":["aaaa0001"]}],"revision_of":null' + SUBMIT_DEFAULTS + b"}",
    HEAD + WS + b',"subtask_id":"aaaa0001","agent_type":"codegen","description":"Add a greeting",'
    b'"files":{"a.py":' + REF_AB_JSON + b"}," + CONFIG + b',"attempt":1,"earlier":[],"previous_error":null,'
    b'"previous_output":null' + dispatch_fields("aaaa0001", 1) + b"}",
    HEAD + WS + b"}",
    HEAD + WS + b',"subtask_id":"aaaa0001","agent_type":"codegen","description":"Add a greeting",'
    b'"files":{"a.py":' + REF_AB_JSON + b"}," + CONFIG + b',"attempt":2,"earlier":[],'
    b'"previous_error":"checks failed","previous_output":{"files":{"b.py":' + REF_CD_JSON + b"},"
    b'"summary":"greets","deletedFiles":["old.py"]}' + dispatch_fields("aaaa0001", 2) + b"}",
    HEAD + WS + b',"subtask_id":"aaaa0001","run_id":"run-2","result":{"subtaskId":"aaaa0001",'
    b'"agentType":"codegen","success":true,"output":{"files":{"b.py":' + REF_CD_JSON + b'},"summary":"greets"},'
    b'"durationMs":9,"attempts":2}}',
    HEAD
    + WS
    + b',"subtask_id":"bbbb0002","agent_type":"test","description":"Test it","files":{"a.py":'
    + REF_AB_JSON
    + b',"b.py":'
    + REF_CD_JSON
    + b"},"
    + CONFIG
    + b',"attempt":1,"earlier":[{"subtaskId":"aaaa0001","agentType":"codegen","summary":"greets"}],'
    b'"previous_error":null,"previous_output":null' + dispatch_fields("bbbb0002", 1) + b"}",
    HEAD + WS + b',"subtask_id":"bbbb0002","run_id":"run-3","attempt":1,"cap":{"cap":"task","limit_usd":1.0,'
    b'"spent_usd":0.9,"estimate_usd":0.2},"output":null}',
    HEAD + b'"originator_topic":"libs.domain.run:Run",' + WS + b',"task_id":' + TID + b',"subtask_id":"aaaa0001",'
    b'"agent_type":"codegen","attempt":2,"provider":"anthropic","model":"m","retry_of":"checks failed"'
    + RUN_START_DEFAULTS
    + b"}",
    HEAD + WS + b',"task_id":' + TID + b',"subtask_id":"aaaa0001","agent_type":"codegen","provider":"anthropic",'
    b'"model":"m","output":{"files":{"b.py":' + REF_CD_JSON + b'},"summary":"greets"},"usage":{"input_tokens":10,'
    b'"output_tokens":5},"duration_ms":120,"subrequests":3,"attempt":2}',
    HEAD
    + b'"originator_topic":"libs.domain.gate:QuestionGate",'
    + WS
    + b',"question_id":"que_1","task_id":'
    + TID
    + b',"run_id":"run-2","questions":[{"question":"Which?","header":"Pick","options":[{"label":"a"}],'
    b'"multiple":false,"custom":true}],"tool":{"messageID":"m1","callID":"c1"},"expires_at":1700000000000,'
    b'"subtask_id":"aaaa0001","agent_type":"codegen"}',
    HEAD + b'"originator_topic":"libs.domain.schedule:Schedule",' + WS + b"}",
    HEAD + b'"originator_topic":"libs.domain.ledger:Ledger",' + WS + b',"task_id":' + TID + b"}",
    HEAD + WS + b',"task_id":' + TID + b',"run_id":"run-2","subtask_id":"aaaa0001","model":"m","input_tokens":10,'
    b'"output_tokens":5,"cache_read_tokens":0,"cache_write_tokens":0,"cost_usd":0.0021,"cpu_time_ms":120,'
    b'"subrequests":3,"priced":true,"estimated":false}',
]


def a_life() -> list[Aggregate]:
    """The same commands, with the same values, as the code before was given (as dicts then)."""
    task = Task.submit(TASK_ID, "ws-1", REQUEST, PLAN)
    task.dispatch(PLAN[0])
    task.start()
    failed = RunOutput(files={"b.py": REF_CD}, summary="greets", deleted_files=["old.py"])
    task.attempt_failed("aaaa0001", "run-1", 1, "checks failed", True, failed)
    output = RunOutput(files={"b.py": REF_CD}, summary="greets")
    result = SubtaskResult(
        subtask_id="aaaa0001", agent_type="codegen", success=True, output=output, duration_ms=9, attempts=2
    )
    task.record_success("aaaa0001", "run-2", result)
    task.dispatch_ready()
    task.pause("bbbb0002", "run-3", 1, BudgetCap(cap="task", limit_usd=1.0, spent_usd=0.9, estimate_usd=0.2), None)
    run = Run.start("ws-1", str(TASK_ID), "aaaa0001", "codegen", 2, "anthropic", "m", retry_of="checks failed")
    run.succeed(output, {"input_tokens": 10, "output_tokens": 5}, 120, 3)
    question = QuestionItem(question="Which?", header="Pick", options=[QuestionOption(label="a")], custom=True)
    tool = ToolRef(message_id="m1", call_id="c1")
    gate = QuestionGate.ask(
        "ws-1", "que_1", str(TASK_ID), "run-2", [question], tool, 1_700_000_000_000, "aaaa0001", "codegen"
    )
    ledger = Ledger.open("ws-1", str(TASK_ID))
    ledger.charge("run-2", "aaaa0001", "m", 10, 5, 0, 0, 0.0021, 120, 3, True)
    return [task, run, gate, Schedule.open("ws-1"), ledger]


def test_what_the_aggregates_save_is_byte_for_byte_what_the_code_before_saved(mapper: PayloadMapper) -> None:
    events = [dataclasses.replace(e, timestamp=T) for a in a_life() for e in a.collect_events()]

    saved = [mapper.to_stored_event(e) for e in events]

    assert len(saved) == len(BEFORE)
    for record, before in zip(saved, BEFORE, strict=True):
        assert record.state == before
    # And each loads back into an equal event.
    for e, record in zip(events, saved, strict=True):
        assert vars(mapper.to_domain_event(record)) == vars(e)


def test_the_dispatch_names_each_file_once_with_the_summaries_of_the_steps_before(mapper: PayloadMapper) -> None:
    (task, *_) = a_life()
    (_, first, *_, second, _) = task.collect_events()

    assert second.payload.files == {"a.py": REF_AB, "b.py": REF_CD}
    assert second.payload.earlier == [StepSummary(subtask_id="aaaa0001", agent_type="codegen", summary="greets")]
    assert isinstance(first.payload, TaskSubtaskDispatched) and first.payload.files == {"a.py": REF_AB}


@pytest.mark.parametrize("layout", ["payload first", "workspace first", "timestamp last"])
def test_a_large_event_laid_out_otherwise_loads_all_the_same(mapper: PayloadMapper, layout: str) -> None:
    # The envelope fields of a large event are read from its first bytes; JSON written some other
    # way (by hand, by another tool) is read whole.
    files = b",".join(b'"src/m%d.py":"x = %d\\n"' % (i, i) for i in range(100))
    payload = (
        b'"subtask_id":"aaaa0001","agent_type":"codegen","description":"Greet","files":{' + files + b"},"
        b'"config":{},"attempt":1'
    )
    timestamp, workspace = b'"timestamp":"2024-11-02T08:00:00.500000Z"', b'"workspace_id":"ws-old"'
    state = {
        "payload first": b"{" + payload + b"," + timestamp + b"," + workspace + b"}",
        "workspace first": b"{" + workspace + b"," + timestamp + b"," + payload + b"}",
        "timestamp last": b"{" + workspace + b"," + payload + b"," + timestamp + b"}",
    }[layout]
    assert len(state) > 1024

    loaded = mapper.to_domain_event(stored(2, "libs.domain.task:Task.SubtaskDispatched", state))

    assert (loaded.workspace_id, loaded.timestamp) == ("ws-old", datetime(2024, 11, 2, 8, 0, 0, 500000, tzinfo=UTC))
    assert len(loaded.payload.files) == 100 and loaded.payload.files["src/m7.py"] == "x = 7\n"


# --- what is no domain event, and what is no event ----------------------------------------------


class Counter(Aggregate):
    """An aggregate whose events carry no payload Struct (as the bench's probe)."""

    @event("Opened")
    def __init__(self) -> None:
        self.count = 0

    @event("Counted")
    def count_up(self, by: int) -> None:
        self.count += by


def test_an_event_without_a_payload_struct_is_stored_as_eventsourcing_stores_it(mapper: PayloadMapper) -> None:
    counter = Counter()
    counter.count_up(3)
    opened, counted = counter.collect_events()

    state = mapper.to_stored_event(counted).state
    loaded = mapper.to_domain_event(mapper.to_stored_event(counted))

    assert state.startswith(b'{"timestamp":') and state.endswith(b',"by":3}')
    assert vars(loaded) == vars(counted)
    assert mapper.to_domain_event(mapper.to_stored_event(opened)).mutate(None).count == 0


def test_a_stored_event_its_payload_struct_refuses_raises_with_the_event_named(mapper: PayloadMapper) -> None:
    broken = HEAD + WS + b',"error":1}'

    with pytest.raises(MapperDeserialisationError, match=r"Task\.Failed.*version 7"):
        mapper.to_domain_event(stored(7, "libs.domain.task:Task.Failed", broken))


def test_the_application_stores_through_the_payload_mapper() -> None:
    app = OrchestratorApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    task = Task.submit(uuid.uuid4(), "ws-1", REQUEST, PLAN)
    app.save(task)

    assert isinstance(app.mapper, PayloadMapper)
    assert app.repository.get(task.id).subtasks == PLAN
