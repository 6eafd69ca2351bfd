"""Agents' questions (spec 001 questions queue): asked through the agent's ask_human tool, shown
to people over HTTP, answered (checked against the options) and the agent continuing with the
answer; or expiring, and the agent told so."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from contracts.events import EventEnvelope, task_of
from libs.devstack.stack import Stack
from libs.eventstore.store import EventStore
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    executor_restored,
    executor_runs,
    get_task,
    in_review_and_charged,
    model_calls,
    new_workspace,
    script_model,
    sse_events,
    stop_idle_executor,
    submit,
    task_request,
    wait_for,
)

pytestmark = pytest.mark.e2e

PERSON_S = 2.0
QUESTION = {
    "question": "Which greeting should the endpoint answer with?",
    "header": "Greeting",
    "options": [{"label": "Hello", "description": "Formal"}, {"label": "Hi"}],
    "multiple": False,
    "custom": False,
}


@pytest.fixture
def team(stack: Stack) -> dict[str, str]:
    return new_workspace(stack, "q")


@pytest.fixture
def api(stack: Stack, team: dict[str, str]) -> Iterator[httpx.Client]:
    headers = bearer(team["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=headers) as client:
        yield client


def questions_path(team: dict[str, str]) -> str:
    return f"/api/v1/workspaces/{team['workspaceId']}/orchestration/questions"


def asks(description: str) -> dict[str, Any]:
    """The task's first model turn: the agent asks QUESTION."""
    return {
        "match": f"Task: {description}\n",
        "tool_calls": [{"name": "ask_human", "arguments": {"questions": [QUESTION]}}],
    }


def asks_then_greets(stack: Stack, description: str, answer: str) -> None:
    """Scripts the task's agent: it asks QUESTION, and once told `answer`, writes it and finishes."""
    script_model(
        stack,
        asks(description),
        {
            "match": f"A human answered:\n- Greeting: {answer}",
            "tool_calls": write_and_finish(f"GREETING = '{answer}'\n"),
        },
    )


def asked(stack: Stack, api: httpx.Client, team: dict[str, str], what: str, answer: str) -> tuple[str, dict[str, Any]]:
    """A task whose agent asks QUESTION (and greets with `answer` once told it): its id, and
    the question once it shows in the queue."""
    description = f"{what} {uuid.uuid4().hex[:8]}"
    asks_then_greets(stack, description, answer)
    (task_id,) = submit(api, task_request(description))
    return task_id, wait_for_question(api, team)


def write_and_finish(content: str) -> list[dict[str, Any]]:
    return [
        {"name": "write_file", "arguments": {"path": "src/register.py", "content": content}},
        {"name": "finish", "arguments": {"summary": "done"}},
    ]


def wait_for_question(api: httpx.Client, team: dict[str, str], timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api.get(questions_path(team)).json()["questions"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError("no question appeared")


def test_an_agent_asks_a_human_gets_the_answer_and_goes_on_with_it(
    stack: Stack, api: httpx.Client, team: dict[str, str]
) -> None:
    task_id, question = asked(stack, api, team, "Greet the user", "Hello")

    assert question["questions"] == [QUESTION]
    assert question["id"].startswith("que_")
    assert set(question["tool"]) == {"messageID", "callID"} and question["sessionID"]
    detail = api.get(f"{questions_path(team)}/{question['id']}")
    assert detail.json() == {"question": question}

    answer = f"{questions_path(team)}/{question['id']}/answer"
    for wrong, reason in (([["Howdy"]], "not one of its options"), ([["Hello", "Hi"]], "takes one answer"), ([], "1")):
        response = api.post(answer, json={"answers": wrong})
        assert response.status_code == 400 and reason in response.json()["message"], response.text
    assert api.post(answer, json={"answers": "Hello"}).status_code == 400
    assert api.post(answer, json={"answers": [["Hello"]]}).json() == {"answered": True}

    assert api.post(answer, json={"answers": [["Hello"]]}).status_code == 404, "answered already"
    assert api.get(f"{questions_path(team)}/{question['id']}").status_code == 404
    task = wait_for(api, task_id, in_review_and_charged)
    assert task["results"][task["subtasks"][0]["id"]]["output"]["files"] == {"src/register.py": "GREETING = 'Hello'\n"}
    assert api.get(questions_path(team)).json() == {"questions": []}


def test_the_time_a_run_waits_for_an_answer_is_not_its_duration_nor_charged_as_its_time(
    stack: Stack, api: httpx.Client, team: dict[str, str]
) -> None:
    task_id, question = asked(stack, api, team, "Greet slowly", "Hi")

    time.sleep(PERSON_S)  # the person takes a while to answer
    answer = api.post(f"{questions_path(team)}/{question['id']}/answer", json={"answers": [["Hi"]]})
    assert answer.json() == {"answered": True}

    task = wait_for(api, task_id, in_review_and_charged)
    result = task["results"][task["subtasks"][0]["id"]]
    assert result["durationMs"] < PERSON_S * 1000, "the agent's working time"
    assert result["cost"]["cpuTimeMs"] == result["durationMs"], "charged as its working time"
    # The wait shows where it happened: on the question's tool call.
    log = api.get(f"/api/v1/workspaces/{team['workspaceId']}/orchestration/log?tool=ask_human").json()
    (call,) = [e for e in log["items"] if e["target"] == question["id"]]
    assert call["duration"] >= PERSON_S * 1000


def test_an_unanswered_question_expires_and_the_agent_is_told(
    stack: Stack, api: httpx.Client, team: dict[str, str]
) -> None:
    config = f"/api/v1/workspaces/{team['workspaceId']}/orchestration/config"
    assert api.patch(config, json={"questionExpirySeconds": 1}).status_code == 200
    description = f"Nobody answers {uuid.uuid4().hex[:8]}"
    script_model(
        stack,
        asks(description),
        {"match": "nobody answered in time", "tool_calls": write_and_finish("GREETING = 'Hi'\n")},
    )
    (task_id,) = submit(api, task_request(description))
    question = wait_for_question(api, team)

    task = wait_for(api, task_id, in_review_and_charged)

    assert task["results"][task["subtasks"][0]["id"]]["output"]["files"] == {"src/register.py": "GREETING = 'Hi'\n"}
    answer = api.post(f"{questions_path(team)}/{question['id']}/answer", json={"answers": [["Hello"]]})
    assert answer.status_code == 404, "expired"
    log = api.get(f"/api/v1/workspaces/{team['workspaceId']}/orchestration/log?tool=ask_human").json()
    assert [(e["status"], e["target"]) for e in log["items"]] == [("error", question["id"])]
    # This task's calls only: another test's agent may have been told the same.
    told = model_calls(stack, description, "nobody answered in time")
    assert len(told) == 1


def test_another_workspace_cannot_see_or_answer_a_question(
    stack: Stack, api: httpx.Client, team: dict[str, str]
) -> None:
    _, question = asked(stack, api, team, "Private question", "Hi")

    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as stranger:
        assert stranger.get(f"{questions_path(team)}/{question['id']}").status_code == 404
        mine = "/api/v1/workspaces/default/orchestration/questions"
        listed = stranger.get(mine)
        assert listed.status_code == 200
        assert question["id"] not in json.dumps(listed.json())
        assert stranger.post(f"{mine}/{question['id']}/answer", json={"answers": [["Hi"]]}).status_code == 404
    assert api.post(f"{questions_path(team)}/{question['id']}/answer", json={"answers": [["Hi"]]}).status_code == 200


def test_a_purge_stops_the_agent_waiting_on_its_question_and_keeps_nothing_of_its_task(
    stack: Stack, api: httpx.Client, team: dict[str, str]
) -> None:
    """Spec 001's purge "pauses the executor and clears ... tool logs, session IDs": the run of a
    purged task makes no other model or tool call, is charged for what it spent, and nothing of
    its task shows in the tool log, the dump or the feed, live or replayed."""
    description = f"Purged while asking {uuid.uuid4().hex[:8]}"
    base = f"{stack.stream_url}/api/v1/workspaces/{team['workspaceId']}/orchestration"
    script_model(stack, asks(description))
    (task_id,) = submit(api, task_request(description))
    question = wait_for_question(api, team)
    head = debug_dump(stack, team["workspaceId"], api.headers)["logHead"]
    frames: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{base}/events?since_seq={head}", headers=api.headers, timeout=30) as feed:
        assert api.post(f"/api/v1/workspaces/{team['workspaceId']}/orchestration/purge").status_code == 200
        charge = wait_for_event(stack, "ledger.charged", task_id)
        # Another task after the purge: the feed is read until it is in review, and whatever the
        # purged task's run recorded as it stopped came before that.
        (after,) = submit(api, task_request(f"After the purge {uuid.uuid4().hex[:8]}"))
        for frame in sse_events(feed):
            frames.append(frame)
            if frame["event"] == "task.review_requested" and frame["data"]["payload"]["task_id"] == after:
                break

    assert len(model_calls(stack, description)) == 1, "no model call after the purge"
    assert charge.payload["input_tokens"] == 1000, "the call it made before the purge is charged"
    ended = wait_for_event(stack, "run.failed", task_id)
    assert "purged" in ended.payload["error"] and ended.payload["retryable"] is False
    purge, *after_purge = frames
    assert purge["event"] == "workspace.purged" and purge["data"]["payload"]["stopped_tasks"] == [task_id]
    assert task_id not in json.dumps(after_purge), "the live feed shows nothing of the purged task after its purge"
    dump = debug_dump(stack, team["workspaceId"], api.headers)
    events = [e for e in dump["events"] if e["type"] != "workspace.purged"]
    assert task_id not in json.dumps(dump["tasks"] + dump["runs"] + dump["gates"] + events)
    log = api.get(f"/api/v1/workspaces/{team['workspaceId']}/orchestration/log", params={"limit": 200}).json()
    assert log["items"], "the task after the purge has its tool calls logged"
    assert [e for e in log["items"] if e["taskID"] != after] == [], "no tool call of the purged task is logged"
    assert api.get(f"/tasks/{task_id}").status_code == 404
    assert api.post(f"{questions_path(team)}/{question['id']}/answer", json={"answers": [["Hi"]]}).status_code == 404


def wait_for_event(stack: Stack, event_type: str, task_id: str, timeout: float = 20) -> EventEnvelope:
    """The first event of that type about the task, once the event store has it."""
    store = EventStore(stack.database_url, pool_size=1)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [e for e in store.read(0, 1_000_000) if e.type == event_type and task_of(e) == task_id]
            if found:
                return found[0]
            time.sleep(0.1)
    finally:
        store.close()
    raise AssertionError(f"no {event_type} of task {task_id} in {timeout} s")


@pytest.fixture
def one_run_at_a_time(stack: Stack) -> Iterator[None]:
    """The executor restarted to carry one agent run at a time, then back as it was."""
    with executor_restored(stack, restart=True):
        stop_idle_executor(stack)
        stack.restart_service("executor", {"MAX_CONCURRENT_RUNS": "1"})
        yield


def until(read: Callable[[], Any], expected: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while (found := read()) != expected:
        assert time.monotonic() < deadline, f"{found} is not {expected}"
        time.sleep(0.05)


def test_a_run_waiting_for_an_answer_leaves_its_executor_free_for_other_tasks(
    stack: Stack, api: httpx.Client, team: dict[str, str], one_run_at_a_time: None
) -> None:
    waiting_id, question = asked(stack, api, team, "Greet the user", "Hi")
    # The run parks once review has answered the ask, a moment after the question shows.
    until(lambda: executor_runs(stack), {"slots": 1, "working": 0, "waiting": 1, "resuming": 0})

    # The only slot is free while the agent waits: another task's two runs take it in turn.
    (meanwhile_id,) = submit(api, task_request(f"Meanwhile {uuid.uuid4().hex[:8]}"))
    wait_for(api, meanwhile_id, in_review_and_charged)
    assert get_task(api, waiting_id)["status"] == "running", "still waiting for its answer"

    answer = f"{questions_path(team)}/{question['id']}/answer"
    assert api.post(answer, json={"answers": [["Hi"]]}).json() == {"answered": True}
    task = wait_for(api, waiting_id, in_review_and_charged)
    assert task["results"][task["subtasks"][0]["id"]]["output"]["files"] == {"src/register.py": "GREETING = 'Hi'\n"}
    assert executor_runs(stack) == {"slots": 1, "working": 0, "waiting": 0, "resuming": 0}
