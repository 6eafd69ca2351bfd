"""Spec 001's tool call log: every tool call of every agent run is an entry, listed page by page
and filtered (`GET .../orchestration/log`, gateway) and streamed (`.../orchestration/log/stream`,
stream service). Each test works in a workspace of its own, so the counts are exact."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, sse_events, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

LEAKED = "sk-ant-api03-" + "k" * 40  # a key a model might search for, having read it in a file

SPEC_FIELDS = {
    "tool",
    "sessionID",
    "callID",
    "entryID",
    "title",
    "timestamp",
    "duration",
    "status",
    "corrections",
    "target",
    "agentName",
    "container_id",
    "workspaceID",
}
EXTENSIONS = {"taskID", "subtaskID", "error"}


@dataclass(frozen=True)
class Workspace:
    id: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Logged:
    """A workspace whose two tasks have run: the first scripted to read a missing file, search
    for a key, write and finish (then its test run writes and finishes), the second unscripted
    (each run writes and finishes)."""

    workspace: Workspace
    scripted: str  # task ids
    plain: str
    started_ms: int
    ended_ms: int


def tool_log_workspace(stack: Stack) -> Workspace:
    created = new_workspace(stack, "toollog", "tool log")
    return Workspace(created["workspaceId"], bearer(created["apiKey"]))


def log_url(stack: Stack, workspace: str) -> str:
    return f"{stack.gateway_url}/api/v1/workspaces/{workspace}/orchestration/log"


def stream_url(stack: Stack, workspace: str) -> str:
    return f"{stack.stream_url}/api/v1/workspaces/{workspace}/orchestration/log/stream"


def run_tasks(stack: Stack, workspace: Workspace, *requests: dict[str, Any]) -> list[str]:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=workspace.headers) as api:
        task_ids = submit(api, *requests)
        with ThreadPoolExecutor(len(task_ids)) as pool:
            list(pool.map(lambda t: wait_for(api, t, in_review_and_charged), task_ids))
    return task_ids


@pytest.fixture(scope="module")
def logged(stack: Stack) -> Logged:
    workspace = tool_log_workspace(stack)
    scripted = f"Read then write {uuid.uuid4().hex[:10]}"
    calls = [
        {"name": "read_file", "arguments": {"path": "src/missing.py"}},
        {"name": "search", "arguments": {"pattern": LEAKED}},
        {"name": "write_file", "arguments": {"path": "src/register.py", "content": "def register(u):\n    return u\n"}},
        {"name": "finish", "arguments": {"summary": "read, then wrote"}},
    ]
    behaviour = {"match": f"Task: {scripted}\n", "tool_calls": calls}  # the codegen run's first turn only
    assert httpx.post(f"{stack.model_server_url}/_script", json={"behaviours": [behaviour]}).status_code == 200
    started = int(time.time() * 1000)
    first, second = run_tasks(stack, workspace, task_request(scripted), task_request("Just write"))
    return Logged(workspace, first, second, started, int(time.time() * 1000))


def page(stack: Stack, logged: Logged, **params: Any) -> dict[str, Any]:
    response = httpx.get(log_url(stack, logged.workspace.id), params=params, headers=logged.workspace.headers)
    assert response.status_code == 200, response.text
    return response.json()


def everything(stack: Stack, logged: Logged) -> list[dict[str, Any]]:
    return page(stack, logged, limit=200)["items"]


def seq_of(entry: dict[str, Any]) -> int:
    return int(entry["entryID"].removeprefix("entry_"))


def test_every_tool_call_is_an_entry_with_the_spec_fields(stack: Stack, logged: Logged) -> None:
    body = page(stack, logged)
    entries = body["items"]
    assert body["meta"] == {"page": 1, "limit": 50, "total": 10, "pages": 1}

    assert all(set(e) == SPEC_FIELDS | EXTENSIONS for e in entries)
    seqs = [seq_of(e) for e in entries]
    assert seqs == sorted(seqs, reverse=True), "newest first"
    # A call id is the model's: unique within its session (the local model server numbers them
    # per conversation), while an entry id is unique in the log.
    assert len({e["entryID"] for e in entries}) == len({(e["sessionID"], e["callID"]) for e in entries}) == 10
    for e in entries:
        assert e["workspaceID"] == logged.workspace.id
        assert logged.started_ms <= e["timestamp"] <= logged.ended_ms
        assert e["duration"] >= 0 and e["corrections"] == [] and e["container_id"] is None
        assert e["status"] in ("ok", "error") and e["title"]

    # Per task: the codegen run's calls, then the test run's, each run its own session.
    def calls(task_id: str) -> list[tuple[str, str, str | None]]:
        return [(e["agentName"], e["tool"], e["status"]) for e in reversed(entries) if e["taskID"] == task_id]

    assert calls(logged.scripted) == [
        ("codegen", "read_file", "error"),
        ("codegen", "search", "ok"),
        ("codegen", "write_file", "ok"),
        ("codegen", "finish", "ok"),
        ("test", "write_file", "ok"),
        ("test", "finish", "ok"),
    ]
    assert calls(logged.plain) == [
        ("codegen", "write_file", "ok"),
        ("codegen", "finish", "ok"),
        ("test", "write_file", "ok"),
        ("test", "finish", "ok"),
    ]
    sessions = {(e["taskID"], e["agentName"]): e["sessionID"] for e in entries}
    assert len(set(sessions.values())) == 4
    assert all(sessions[(e["taskID"], e["agentName"])] == e["sessionID"] for e in entries)

    (failed,) = [e for e in entries if e["status"] == "error"]
    assert failed["target"] == "src/missing.py"
    assert failed["title"] == "Read src/missing.py: not found"
    assert "does not exist" in failed["error"]
    (searched,) = [e for e in entries if e["tool"] == "search"]
    assert searched["title"] == "Searched for [redacted]" and searched["target"] == "[redacted]"
    assert LEAKED not in json.dumps(entries)
    # Masked where the call was recorded: the events feed does not carry it either.
    feed = f"{stack.stream_url}/api/v1/workspaces/{logged.workspace.id}/orchestration/events?since_seq=0"
    with httpx.stream("GET", feed, headers=logged.workspace.headers, timeout=30) as response:
        for frame in sse_events(response):
            assert LEAKED not in json.dumps(frame)
            if frame["event"] == "task.review_requested" and frame["data"]["payload"]["task_id"] == logged.scripted:
                break
    wrote = next(e for e in entries if e["taskID"] == logged.scripted and e["tool"] == "write_file")
    assert wrote["target"] == "src/register.py" and wrote["title"].startswith("Wrote src/register.py")


def test_pages_split_the_log_and_say_how_many_there_are(stack: Stack, logged: Logged) -> None:
    whole = everything(stack, logged)
    pages = [page(stack, logged, page=n, limit=4) for n in (1, 2, 3, 4)]

    assert [p["meta"] for p in pages] == [{"page": n, "limit": 4, "total": 10, "pages": 3} for n in (1, 2, 3, 4)]
    assert [len(p["items"]) for p in pages] == [4, 4, 2, 0]
    assert [e for p in pages for e in p["items"]] == whole


def test_filters_narrow_the_log(stack: Stack, logged: Logged) -> None:
    whole = everything(stack, logged)

    def where(**params: Any) -> list[dict[str, Any]]:
        body = page(stack, logged, limit=200, **params)
        assert body["meta"]["total"] == len(body["items"])
        return body["items"]

    assert [e["tool"] for e in where(tool="read_file")] == ["read_file"]
    assert where(status="error") == [e for e in whole if e["status"] == "error"] != []
    assert len(where(status="ok")) == 9
    assert where(status="intercepted") == []
    session = next(e["sessionID"] for e in whole if e["status"] == "error")
    assert [e["tool"] for e in where(sessionID=session)] == ["finish", "write_file", "search", "read_file"]
    assert where(agentName="test") == [e for e in whole if e["agentName"] == "test"]
    assert len(where(agentName="test")) == 4
    assert where(tool="finish", agentName="codegen", status="ok") == [
        e for e in whole if e["tool"] == "finish" and e["agentName"] == "codegen"
    ]

    # Time: since is inclusive, until exclusive (epoch ms).
    middle = sorted(e["timestamp"] for e in whole)[4]
    assert where(since=middle) == [e for e in whole if e["timestamp"] >= middle]
    assert where(until=middle) == [e for e in whole if e["timestamp"] < middle]
    assert where(since=middle, until=middle + 1) == [e for e in whole if e["timestamp"] == middle]
    assert where(since=logged.ended_ms + 1) == []


def test_bad_paging_and_filters_are_400_with_the_error_body(stack: Stack, logged: Logged) -> None:
    url, headers = log_url(stack, logged.workspace.id), logged.workspace.headers
    for params in (
        {"limit": 201},
        {"limit": 0},
        {"page": 0},
        {"status": "maybe"},
        {"since": "yesterday"},
        {"tool": "a\x00b"},
    ):
        response = httpx.get(url, params=params, headers=headers)
        assert response.status_code == 400, params
        assert set(response.json()) == {"error", "message"}
        assert response.json()["error"] == "invalid_request"
        assert response.json()["message"].startswith(f"{next(iter(params))}: "), "it names the parameter"
    assert page(stack, logged, limit=200)["meta"]["limit"] == 200


def test_another_workspace_sees_none_of_it(stack: Stack, logged: Logged) -> None:
    other = tool_log_workspace(stack)
    own = httpx.get(log_url(stack, other.id), headers=other.headers)
    assert own.json() == {"items": [], "meta": {"page": 1, "limit": 50, "total": 0, "pages": 0}}

    for url in (log_url(stack, logged.workspace.id), stream_url(stack, logged.workspace.id) + "?since_seq=0"):
        response = httpx.get(url, headers=other.headers)
        assert response.status_code == 404, url
        assert response.json()["error"] == "Not found"
    for url in (log_url(stack, logged.workspace.id), stream_url(stack, logged.workspace.id)):
        assert httpx.get(url).status_code == 401, "no key"


@contextlib.contextmanager
def following(url: str, headers: dict[str, str]) -> Iterator[Iterator[str]]:
    """The stream's lines after its `: connected` comment: from then on no call is missed."""
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        yield lines


def frames(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next `count` SSE frames as {id, event, data}; comments and `retry:` are skipped."""
    found: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for line in lines:
        if line == "":
            if "data" in fields:
                found.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
                if len(found) == count:
                    return found
            fields = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            fields[field] = value.removeprefix(" ")
    raise AssertionError(f"the stream ended after {len(found)} of {count} frames")


def test_the_stream_sends_each_call_live_and_resumes_after_since_seq_without_duplicates(stack: Stack) -> None:
    workspace = tool_log_workspace(stack)
    url = stream_url(stack, workspace.id)
    with following(url, workspace.headers) as lines:
        (task_id,) = run_tasks(stack, workspace, task_request("Stream my calls"))
        live = frames(lines, 4)

    listed = oldest_first(stack, workspace)
    assert [f["event"] for f in live] == ["tool.call"] * 4
    assert [f["data"] for f in live] == listed, "the stream's entries are the log's"
    assert [f["id"] for f in live] == [seq_of(e) for e in listed]
    assert [(f["data"]["taskID"], f["data"]["agentName"], f["data"]["tool"]) for f in live] == [
        (task_id, "codegen", "write_file"),
        (task_id, "codegen", "finish"),
        (task_id, "test", "write_file"),
        (task_id, "test", "finish"),
    ]

    # Resuming after the second call gets the third and the fourth, then goes live: a new
    # task's four calls follow them, and nothing comes twice at the seam.
    second = live[1]["id"]
    with following(f"{url}?since_seq={second}", workspace.headers) as lines:
        run_tasks(stack, workspace, task_request("And more calls"))
        resumed = frames(lines, 2 + 4)
    listed = oldest_first(stack, workspace)
    assert [f["id"] for f in resumed] == [seq_of(e) for e in listed if seq_of(e) > second]
    assert [f["data"] for f in resumed] == listed[2:]

    # Last-Event-ID resumes the same way; since_seq=0 replays the whole log, oldest first.
    with following(url, {**workspace.headers, "Last-Event-ID": str(live[2]["id"])}) as lines:
        assert [f["data"] for f in frames(lines, 5)] == listed[3:]
    with following(f"{url}?since_seq=0", workspace.headers) as lines:
        assert [f["data"] for f in frames(lines, 8)] == listed


def oldest_first(stack: Stack, workspace: Workspace) -> list[dict[str, Any]]:
    response = httpx.get(log_url(stack, workspace.id), params={"limit": 200}, headers=workspace.headers)
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["items"]))


def test_a_purge_empties_the_log_and_the_stream_will_not_resume_from_before_it(stack: Stack) -> None:
    workspace = tool_log_workspace(stack)
    run_tasks(stack, workspace, task_request("Calls to purge"))
    assert len(oldest_first(stack, workspace)) == 4
    orchestration = f"{stack.gateway_url}/api/v1/workspaces/{workspace.id}/orchestration"
    assert httpx.post(f"{orchestration}/purge", headers=workspace.headers).status_code == 200

    assert oldest_first(stack, workspace) == []
    refused = httpx.get(f"{stream_url(stack, workspace.id)}?since_seq=0", headers=workspace.headers)
    assert refused.status_code == 410
    assert refused.json()["error"] == "tool_log_purged"
