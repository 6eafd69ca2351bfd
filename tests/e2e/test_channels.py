"""Coordination channels (spec 002, issue 16): any session of a workspace posts and reads on its
tasks' and runs' channels; replies thread by correlation id; `recv?wait=true` is woken by a send;
the inbox summary of a session's context counts what it has not received; messages are events on
the feed and in the dump; another workspace sees nothing of them. HTTP only."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import jsonschema
import pytest

from exports.asyncapi import document
from libs.devstack.stack import Stack
from libs.web.ops import VERSION
from tests.asyncapi import validators
from tests.e2e.helpers import (
    bearer,
    debug_dump,
    get_task,
    log_head,
    new_workspace,
    orchestration,
    sse_events,
    submit,
    task_request,
)
from tests.e2e.test_agent_sessions import assert_diagnostic
from tests.e2e.test_asyncapi import events_on_the_bus

pytestmark = pytest.mark.e2e

KINDS = ["status", "question", "answer", "handoff", "note"]


@dataclass(frozen=True)
class Team:
    """A workspace of the test's own, its key, and one task of it."""

    workspace: str
    key: dict[str, str]
    task_id: str

    @property
    def channel(self) -> str:
        return f"task_{self.task_id}"


@dataclass(frozen=True)
class Agent:
    session_id: str
    token: str


def new_team(stack: Stack, prefix: str) -> Team:
    made = new_workspace(stack, prefix)
    key = bearer(made["apiKey"])
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=key) as api:
        (task_id,) = submit(api, task_request("coordinate on me"))
        get_task(api, task_id)  # in the read models: its channel exists
    return Team(made["workspaceId"], key, task_id)


def new_agent(stack: Stack, team: Team, name: str = "worker") -> Agent:
    made = httpx.post(
        f"{stack.runtime_url}/api/v1/workspaces/{team.workspace}/agent-sessions",
        json={"name": name},
        headers=team.key,
        timeout=10,
    )
    assert made.status_code == 201, made.text
    return Agent(made.json()["session"]["id"], made.json()["token"])


def send(stack: Stack, agent: Agent, channel: str, body: Any, kind: str = "status", **metadata: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.runtime_url}/api/agent/channels/{channel}/send",
        json={"body": body, "metadata": {"message_kind": kind, **metadata}},
        headers=bearer(agent.token),
        timeout=10,
    )


def reply(stack: Stack, agent: Agent, to: str, body: Any, kind: str = "answer", **metadata: Any) -> httpx.Response:
    return httpx.post(
        f"{stack.runtime_url}/api/agent/channels/reply",
        json={"body": body, "metadata": {"message_kind": kind, **metadata}, "reply_to_message_id": to},
        headers=bearer(agent.token),
        timeout=10,
    )


def recv(stack: Stack, agent: Agent, channel: str, timeout: float = 10, **params: Any) -> httpx.Response:
    query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
    return httpx.get(
        f"{stack.runtime_url}/api/agent/channels/{channel}/recv",
        params=query,
        headers=bearer(agent.token),
        timeout=timeout,
    )


def received(stack: Stack, agent: Agent, channel: str, **params: Any) -> list[dict]:
    """The messages a recv returns, once the projector has them (a send is read within ms)."""
    deadline = time.monotonic() + 5
    while True:
        response = recv(stack, agent, channel, **params)
        assert response.status_code == 200, response.text
        messages = response.json()["messages"]
        if messages or time.monotonic() > deadline:
            return messages
        time.sleep(0.02)


def inbox(stack: Stack, agent: Agent) -> dict:
    """The inbox summary of the agent's context."""
    response = httpx.get(f"{stack.runtime_url}/api/agent/context", headers=bearer(agent.token), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["context"]["inbox_summary"]


@pytest.fixture(scope="module")
def team(stack: Stack) -> Team:
    return new_team(stack, "channels")


def test_a_message_sent_is_received_by_another_session_once(stack: Stack, team: Team) -> None:
    alice, bob = new_agent(stack, team, "alice"), new_agent(stack, team, "bob")

    sent = send(stack, alice, team.channel, {"text": "starting on the validation"}, ext={"step": 1})

    assert sent.status_code == 201, sent.text
    message = sent.json()["message"]
    assert message["channel_id"] == team.channel and message["from_session_id"] == alice.session_id
    assert message["message_id"].startswith(f"{team.channel}:") and message["to_session_id"] is None
    assert message["body"] == {"text": "starting on the validation"}
    metadata = message["metadata"]
    assert metadata["coordination_channel_id"] == team.channel and metadata["task_id"] == team.task_id
    assert metadata["message_kind"] == "status" and metadata["ext"] == {"step": 1}
    assert metadata["correlation_id"] and metadata["run_id"] is None and metadata["workflow_id"] is None
    assert received(stack, bob, team.channel) == [message], "received as it was sent"
    assert recv(stack, bob, team.channel).json() == {"messages": []}, "once: the cursor moved past it"
    assert recv(stack, alice, team.channel).json() == {"messages": []}, "a session does not receive its own"


def test_a_reply_goes_to_the_asker_in_the_questions_thread(stack: Stack, team: Team) -> None:
    asker, helper = new_agent(stack, team, "asker"), new_agent(stack, team, "helper")
    asked = send(stack, asker, team.channel, "which file holds the handler?", "question", correlation_id="q-17")
    assert asked.status_code == 201, asked.text
    question = asked.json()["message"]
    assert received(stack, helper, team.channel)[-1] == question

    answered = reply(stack, helper, question["message_id"], "src/register.py")

    assert answered.status_code == 201, answered.text
    answer = answered.json()["message"]
    assert answer["to_session_id"] == asker.session_id and answer["from_session_id"] == helper.session_id
    assert answer["channel_id"] == team.channel and answer["metadata"]["correlation_id"] == "q-17"
    assert answer["metadata"]["ext"] == {"reply_to_message_id": question["message_id"]}
    assert received(stack, asker, team.channel)[-1] == answer
    # A reply to the reply stays in the thread; a correlation id of another thread is refused.
    again = reply(stack, asker, answer["message_id"], "thanks", "note", correlation_id="q-17")
    assert again.status_code == 201 and again.json()["message"]["to_session_id"] == helper.session_id
    wrong = assert_diagnostic(
        reply(stack, asker, answer["message_id"], "x", correlation_id="q-18"), 400, "correlation_mismatch"
    )
    assert wrong["evidence"]["expected"] == "q-17" and wrong["suggested_command"]
    # A thread of its own for each send without one.
    first, second = (send(stack, asker, team.channel, n).json()["message"] for n in (1, 2))
    assert first["metadata"]["correlation_id"] != second["metadata"]["correlation_id"]


def test_a_waiting_recv_is_woken_by_a_send_from_another_session(stack: Stack, team: Team) -> None:
    waiter, sender = new_agent(stack, team, "waiter"), new_agent(stack, team, "sender")
    assert recv(stack, waiter, team.channel, limit=500).status_code == 200  # past what earlier tests sent
    result: dict[str, Any] = {}

    def wait() -> None:
        started = time.monotonic()
        result["response"] = recv(stack, waiter, team.channel, timeout=30, wait=True)
        result["at"], result["took"] = time.monotonic(), time.monotonic() - started

    thread = threading.Thread(target=wait)
    thread.start()
    time.sleep(0.5)
    assert "response" not in result, "nothing to receive: it waits"
    before = time.monotonic()
    sent = send(stack, sender, team.channel, {"progress": 50})
    after = time.monotonic()
    thread.join(timeout=10)

    assert sent.status_code == 201
    response = result["response"]
    assert response.status_code == 200, response.text
    assert response.json()["messages"] == [sent.json()["message"]]
    woken = result["at"] - before
    print(f"woken {woken * 1000:.0f} ms after the send began, {(result['at'] - after) * 1000:.0f} ms after its answer")
    assert woken < 0.5, f"woken {woken:.3f} s after the send"
    assert result["took"] < 1.5


def test_recv_returns_at_most_limit_oldest_first(stack: Stack) -> None:
    team = new_team(stack, "channels-limit")
    sender, reader = new_agent(stack, team, "sender"), new_agent(stack, team, "reader")
    ids = [send(stack, sender, team.channel, {"n": n}).json()["message"]["message_id"] for n in range(5)]

    pages = [received(stack, reader, team.channel, limit=2) for _ in range(3)]

    assert [[m["message_id"] for m in page] for page in pages] == [ids[:2], ids[2:4], ids[4:]]
    assert [m["body"]["n"] for page in pages for m in page] == list(range(5))
    for limit in (0, 501, "many"):
        refused = assert_diagnostic(recv(stack, reader, team.channel, limit=limit), 400, "invalid_request")
        assert "limit" in refused["message"]


def test_the_inbox_counts_what_is_not_received_yet(stack: Stack) -> None:
    team = new_team(stack, "channels-inbox")
    sender, reader = new_agent(stack, team, "sender"), new_agent(stack, team, "reader")
    assert inbox(stack, reader)["unread_count"] == 0
    for n in range(4):
        assert send(stack, sender, team.channel, f"update {n}" + "." * 300).status_code == 201
    received(stack, new_agent(stack, team, "probe"), team.channel)  # the projector has them all

    summary = inbox(stack, reader)

    assert summary["unread_count"] == 4
    assert summary["section"] == {"limit": 50, "returned": 4, "truncated": False}
    newest = summary["items"][0]
    assert newest["channel_id"] == team.channel and newest["kind"] == "status"
    assert newest["preview"].startswith("update 3") and len(newest["preview"]) == 200
    assert newest["metadata"]["coordination_channel_id"] == team.channel
    assert inbox(stack, sender)["unread_count"] == 0, "its own messages are no news to the sender"
    assert len(received(stack, reader, team.channel, limit=3)) == 3
    assert inbox(stack, reader)["unread_count"] == 1
    assert len(received(stack, reader, team.channel)) == 1
    assert inbox(stack, reader) == {
        "items": [],
        "section": {"limit": 50, "returned": 0, "truncated": False},
        "unread_count": 0,
    }


def test_another_workspace_sees_nothing_of_a_channel(stack: Stack, team: Team) -> None:
    ours = new_agent(stack, team, "ours")
    question = send(stack, ours, team.channel, "private?", "question").json()["message"]
    others = new_team(stack, "channels-other")
    theirs = new_agent(stack, others, "theirs")
    run_like = f"run_{uuid.uuid4()}"

    for response in (
        send(stack, theirs, team.channel, "hello"),
        recv(stack, theirs, team.channel),
        recv(stack, theirs, team.channel, wait=True),
        send(stack, theirs, run_like, "hello"),
    ):
        refused = assert_diagnostic(response, 404, "channel_not_found")
        assert refused["suggested_command"] == "GET /api/agent/channels"
    assert_diagnostic(reply(stack, theirs, question["message_id"], "yes"), 404, "message_not_found")
    listed = httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=bearer(theirs.token), timeout=10)
    assert listed.status_code == 200
    assert team.task_id not in listed.text and {c["workspace_id"] for c in listed.json()["channels"]} == {
        others.workspace
    }
    assert team.task_id not in str(inbox(stack, theirs))
    dump = debug_dump(stack, others.workspace, others.key)
    assert team.task_id not in str(dump["events"]) and "private?" not in str(dump)


def test_the_channels_are_the_workspaces_tasks_and_runs(stack: Stack, team: Team) -> None:
    agent = new_agent(stack, team, "lister")
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=team.key) as api:
        (fresh,) = submit(api, task_request("not talked about yet"))
        get_task(api, fresh)
    assert send(stack, agent, team.channel, "keep this channel active").status_code == 201
    run_id = _a_run_of(stack, team)

    on_run = send(stack, agent, f"run_{run_id}", "on the run's own channel", "handoff", task_id=team.task_id)

    assert on_run.status_code == 201, on_run.text
    assert on_run.json()["message"]["metadata"]["run_id"] == run_id
    listed = httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=bearer(agent.token), timeout=10)
    assert listed.status_code == 200
    channels = {c["id"]: c for c in listed.json()["channels"]}
    assert channels[team.channel]["task_id"] == team.task_id and channels[team.channel]["run_id"] is None
    assert channels[team.channel]["last_activity_at"] and channels[team.channel]["channel"] == team.channel
    assert channels[team.channel]["allowed_message_kinds"] == KINDS
    assert channels[team.channel]["workspace_id"] == team.workspace
    if f"task_{fresh}" in channels:  # while it is unfinished, before any message
        assert channels[f"task_{fresh}"]["last_activity_at"] is None
    deadline = time.monotonic() + 5
    while f"run_{run_id}" not in channels and time.monotonic() < deadline:
        time.sleep(0.05)
        listed = httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=bearer(agent.token), timeout=10)
        channels = {c["id"]: c for c in listed.json()["channels"]}
    assert channels[f"run_{run_id}"]["run_id"] == run_id and channels[f"run_{run_id}"]["task_id"] == team.task_id


def _a_run_of(stack: Stack, team: Team) -> str:
    """A run of the team's task, from the workspace's debug dump."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = [r for r in debug_dump(stack, team.workspace, team.key)["runs"] if r["taskId"] == team.task_id]
        if runs:
            return str(runs[0]["runId"])
        time.sleep(0.1)
    raise AssertionError("the task never ran")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"body": "hi", "metadata": {"message_kind": "chat"}}, 400, "message_kind_not_allowed"),
        ({"body": "x" * 20_000, "metadata": {"message_kind": "note"}}, 400, "message_too_large"),
        ({"body": 1, "metadata": {"message_kind": "note", "ext": {"k": "v" * 5000}}}, 400, "message_too_large"),
        (
            {"body": 1, "metadata": {"message_kind": "note", "ext": {"reply_to_message_id": "x"}}},
            400,
            "reserved_metadata",
        ),
        ({"body": 1, "metadata": {"message_kind": "note", "task_id": "another"}}, 400, "metadata_mismatch"),
        ({"body": 1, "metadata": {"message_kind": "note", "coordination_channel_id": "c"}}, 400, "metadata_mismatch"),
        ({"body": 1, "metadata": {"message_kind": "note", "run_id": "r"}}, 400, "metadata_mismatch"),
        ({"body": 1}, 400, "invalid_request"),
        ({"metadata": {"message_kind": "note"}}, 400, "invalid_request"),
        ({"body": 1, "metadata": {"message_kind": "note"}, "extra": 1}, 400, "invalid_request"),
        ({"body": "a\u0000b", "metadata": {"message_kind": "note"}}, 400, "invalid_request"),
        ({"body": 1, "metadata": {"message_kind": "note", "correlation_id": ""}}, 400, "invalid_request"),
    ],
)
def test_a_message_the_channel_does_not_take_is_a_400_and_records_nothing(
    stack: Stack, team: Team, body: dict, status: int, code: str
) -> None:
    agent = new_agent(stack, team, "careless")
    head = log_head(stack)

    response = httpx.post(
        f"{stack.runtime_url}/api/agent/channels/{team.channel}/send",
        json=body,
        headers=bearer(agent.token),
        timeout=10,
    )

    refused = assert_diagnostic(response, status, code)
    if code == "message_kind_not_allowed":
        assert refused["evidence"]["allowed_message_kinds"] == KINDS
        assert all(kind in refused["message"] for kind in KINDS)
    if code == "message_too_large":
        assert refused["evidence"]["bytes"] > refused["evidence"]["max_bytes"]
    assert log_head(stack) == head, "nothing was recorded"


@pytest.mark.parametrize(
    "channel",
    ["task-not-a-uuid", "general", f"TASK_{uuid.UUID(int=1)}", f"task_{uuid.uuid4()}", f"run_{uuid.uuid4()}"],
)
def test_a_channel_that_is_no_task_or_run_of_the_workspace_is_a_404(stack: Stack, team: Team, channel: str) -> None:
    agent = new_agent(stack, team, "lost")
    assert_diagnostic(send(stack, agent, channel, "anyone?"), 404, "channel_not_found")
    assert_diagnostic(recv(stack, agent, channel), 404, "channel_not_found")


def test_a_reply_to_no_message_is_a_404(stack: Stack, team: Team) -> None:
    agent = new_agent(stack, team, "replier")
    for missing in ("nothing", f"{team.channel}:999999", f"{team.channel}:0", f"task_{uuid.uuid4()}:1"):
        assert_diagnostic(reply(stack, agent, missing, "?"), 404, "message_not_found")


def test_messages_are_events_on_the_feed_and_in_the_dump(stack: Stack, team: Team) -> None:
    agent = new_agent(stack, team, "recorded")
    head = log_head(stack)
    asked = send(stack, agent, team.channel, {"q": "ready?"}, "question").json()["message"]
    answered = reply(stack, agent, asked["message_id"], "yes").json()["message"]

    frames: list[dict] = []
    url = orchestration(stack, team.workspace, "events") + f"?since_seq={head}"
    with httpx.stream("GET", url, headers=team.key, timeout=30) as response:
        assert response.status_code == 200
        for frame in sse_events(response):
            if frame["event"] == "channel.message_sent":
                frames.append(frame)
            if len(frames) == 2:
                break

    assert [f["data"]["payload"]["message_id"] for f in frames] == [asked["message_id"], answered["message_id"]]
    assert frames[0]["id"] < frames[1]["id"] and all(f["data"]["seq"] == f["id"] for f in frames)
    sent = frames[1]["data"]["payload"]
    assert sent["reply_to_message_id"] == asked["message_id"] and sent["body"] == "yes"
    assert sent["to_session_id"] == agent.session_id and sent["from_session_id"] == agent.session_id
    wanted, dumped = {asked["message_id"], answered["message_id"]}, set[str]()
    deadline = time.monotonic() + 5  # the live feed can be ahead of the dump's read models by ms
    while not wanted <= dumped and time.monotonic() < deadline:
        events = debug_dump(stack, team.workspace, team.key)["events"]
        dumped = {e["payload"]["message_id"] for e in events if e["type"] == "channel.message_sent"}
    assert wanted <= dumped


def test_every_answer_is_the_shape_the_document_gives_it(stack: Stack, team: Team) -> None:
    """What schemathesis cannot reach (it knows no task id): a channel's answers, checked against
    the runtime's OpenAPI document."""
    document = httpx.get(f"{stack.runtime_url}/schema/openapi.json", timeout=10).json()
    asker, helper = new_agent(stack, team, "asker"), new_agent(stack, team, "helper")
    asked = send(stack, asker, team.channel, {"any": ["json", 1, None]}, "question", ext={"n": 1})
    answered = reply(stack, helper, asked.json()["message"]["message_id"], None)
    headers = bearer(helper.token)
    answers = {
        ("/api/agent/channels/{channel}/send", "post", "201"): asked,
        ("/api/agent/channels/reply", "post", "201"): answered,
        ("/api/agent/channels/{channel}/recv", "get", "200"): recv(stack, asker, team.channel, wait=True),
        ("/api/agent/channels", "get", "200"): httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=headers),
        ("/api/agent/context", "get", "200"): httpx.get(f"{stack.runtime_url}/api/agent/context", headers=headers),
    }

    for (path, method, status), response in answers.items():
        assert response.status_code == int(status), (path, response.text)
        schema = document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator({**schema, "components": document["components"]})
        assert not [e.message for e in validator.iter_errors(response.json())], path
    assert answers[("/api/agent/channels/{channel}/recv", "get", "200")].json()["messages"][-1]["body"] is None


async def test_channel_events_on_the_bus_match_their_asyncapi_messages(stack: Stack) -> None:
    team = await asyncio.to_thread(new_team, stack, "channels-bus")
    agent = await asyncio.to_thread(new_agent, stack, team)
    asked = await asyncio.to_thread(send, stack, agent, team.channel, {"q": 1}, "question")
    await asyncio.to_thread(reply, stack, agent, asked.json()["message"]["message_id"], [1, 2])
    checks = validators(document(VERSION))

    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < 3 and time.monotonic() < deadline:
        on_the_bus = await events_on_the_bus(stack, team.workspace)
        seen = [body for _, body in on_the_bus if body["type"].startswith("channel.")]
    assert [body["type"] for body in seen] == ["channel.opened", "channel.message_sent", "channel.message_sent"]
    for body in seen:
        errors = [e.message for e in checks[body["type"]][1].iter_errors(body)]
        assert not errors, (body["type"], errors)


def test_a_purge_takes_the_workspaces_channels_with_it(stack: Stack) -> None:
    team = new_team(stack, "channels-purge")
    agent = new_agent(stack, team)
    assert send(stack, agent, team.channel, "before the purge").status_code == 201
    received(stack, new_agent(stack, team, "probe"), team.channel)  # projected

    purge = f"{stack.gateway_url}/api/v1/workspaces/{team.workspace}/orchestration/purge"
    purged = httpx.post(purge, headers=team.key, timeout=30)

    assert purged.status_code == 200, purged.text
    listed = httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=bearer(agent.token), timeout=10)
    deadline = time.monotonic() + 5
    while listed.json()["channels"] and time.monotonic() < deadline:
        time.sleep(0.05)
        listed = httpx.get(f"{stack.runtime_url}/api/agent/channels", headers=bearer(agent.token), timeout=10)
    assert listed.json()["channels"] == []
    assert inbox(stack, new_agent(stack, team, "late"))["unread_count"] == 0
    assert_diagnostic(recv(stack, agent, team.channel), 404, "channel_not_found")
    dump = debug_dump(stack, team.workspace, team.key)
    assert not [e for e in dump["events"] if e["type"].startswith("channel.")]
