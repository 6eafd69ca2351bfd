"""Spec 001's events feed: `since_seq` / `Last-Event-ID` resume with every event exactly once,
in order, even when the stream service is killed and restarted in between."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from libs.devstack.stack import Stack
from libs.eventstore.store import EventStore
from tests.e2e.helpers import FEED, in_review_and_charged, sse_events, submit, task_request, wait_for

pytestmark = pytest.mark.e2e


def _log(stack: Stack, after: int) -> list[int]:
    store = EventStore(stack.database_url, pool_size=1)
    try:
        return [e.seq for e in store.read(after, 100_000) if e.workspace_id == "default"]
    finally:
        store.close()


def _collect(url: str, headers: dict[str, str], until: int, timeout: float = 30.0) -> list[dict]:
    """Reads the feed until an event with seq >= until arrives."""
    frames: list[dict] = []
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for frame in sse_events(response):
            frames.append(frame)
            if frame["id"] >= until:
                break
    return frames


def test_frames_carry_seq_type_and_payload(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        (task_id,) = submit(api, task_request())
        wait_for(api, task_id, in_review_and_charged)
    head = max(_log(stack, 0))
    frames = _collect(f"{stack.stream_url}{FEED}?since_seq=0", stack.auth, until=head)

    assert [f["id"] for f in frames] == _log(stack, 0)[: len(frames)]
    for frame in frames:
        assert frame["data"]["seq"] == frame["id"]
        assert frame["data"]["type"] == frame["event"]
        assert isinstance(frame["data"]["payload"], dict)
    mine = [f for f in frames if f["data"]["payload"].get("task_id") == task_id or f["event"] == "task.submitted"]
    assert any(f["event"] == "task.review_requested" for f in frames)
    assert mine


def test_since_seq_returns_exactly_the_events_after_n(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        (task_id,) = submit(api, task_request())
        wait_for(api, task_id, in_review_and_charged)
    seqs = _log(stack, 0)
    middle = seqs[len(seqs) // 2]
    frames = _collect(f"{stack.stream_url}{FEED}?since_seq={middle}", stack.auth, until=seqs[-1])
    assert [f["id"] for f in frames] == [s for s in seqs if s > middle]


def test_resume_after_the_stream_service_is_killed_gets_every_event_once_in_order(stack: Stack) -> None:
    start = max(_log(stack, 0), default=0)
    url = f"{stack.stream_url}{FEED}"
    received: list[dict] = []
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        # A live client sees the first task's events, then the service dies under it.
        (first,) = submit(api, task_request("before the crash"))
        wait_for(api, first, in_review_and_charged)
        first_head = max(_log(stack, start))
        received += _collect(f"{url}?since_seq={start}", stack.auth, until=first_head)

        stack.services["stream"].kill()
        # Work goes on while the stream service is down: events pile up in PostgreSQL only.
        (second,) = submit(api, task_request("while the stream service is down"))
        done = threading.Event()

        def approve_first() -> None:
            api.post(f"/tasks/{first}/review", json={"taskId": first, "decision": "approve"})
            done.set()

        threading.Thread(target=approve_first).start()
        time.sleep(0.5)
        stack.restart_service("stream")
        done.wait(30)
        wait_for(api, second, in_review_and_charged)
        wait_for(api, first, lambda t: t["status"] == "completed")

    head = max(_log(stack, start))
    last_id = str(received[-1]["id"])
    received += _collect(url, {"Last-Event-ID": last_id, **stack.auth}, until=head)

    ids = [f["id"] for f in received]
    assert ids == sorted(set(ids)), "duplicates or out of order"
    assert ids == _log(stack, start), "a gap: some events were never delivered"
    types = [f["event"] for f in received]
    assert "task.completed" in types and types.count("task.review_requested") >= 2


def test_a_browser_reconnecting_with_its_first_since_seq_and_its_last_event_id_gets_no_event_twice(
    stack: Stack,
) -> None:
    """An EventSource keeps the URL it was opened with (`?since_seq=N`) and adds the id of the
    last event it got on each reconnect: the feed resumes after the later of the two."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        (task_id,) = submit(api, task_request())
        wait_for(api, task_id, in_review_and_charged)
    log = _log(stack, 0)
    start, last_got = log[-6], log[-3]

    def resumed(since_seq: int, last_event_id: int) -> list[int]:
        url = f"{stack.stream_url}{FEED}?since_seq={since_seq}"
        return [f["id"] for f in _collect(url, {"Last-Event-ID": str(last_event_id), **stack.auth}, until=log[-1])]

    assert resumed(start, last_got) == resumed(last_got, start) == log[-2:]


NOT_A_SEQ = ["yesterday", "1e3", "-1", "+5", "1.0", "1_000", "\u0661\u0662", "9" * 19, "0x7"]


@pytest.mark.parametrize("value", NOT_A_SEQ)
@pytest.mark.parametrize("path", [FEED, FEED.replace("/events", "/log/stream")])
def test_since_seq_and_last_event_id_take_a_seq_by_one_rule(stack: Stack, path: str, value: str) -> None:
    """What each feed sends as an event's `id:`, and nothing else: decimal digits, within the
    store's range. Both ways of resuming refuse the same values the same way."""
    url = f"{stack.stream_url}{path}"
    by_query = httpx.get(url, params={"since_seq": value}, headers=stack.auth, timeout=10)
    by_header = httpx.get(url, headers={"Last-Event-ID": value.encode(), **stack.auth}, timeout=10)

    for response, name in [(by_query, "since_seq"), (by_header, "Last-Event-ID")]:
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert response.json()["message"].startswith(f"{name}: ")


def test_unknown_workspace_is_a_404(stack: Stack) -> None:
    url = f"{stack.stream_url}/api/v1/workspaces/nope/orchestration/events"
    response = httpx.get(url, timeout=10, headers=stack.auth)
    assert response.status_code == 404
    assert response.json()["error"] == "Not found"


def test_connections_counts_open_subscribers(stack: Stack) -> None:
    count_url = f"{stack.stream_url}{FEED}/connections"

    def count() -> dict:
        return httpx.get(count_url, timeout=10, headers=stack.auth).json()

    before = count()["count"]
    with httpx.stream("GET", f"{stack.stream_url}{FEED}?since_seq=0", timeout=30, headers=stack.auth) as response:
        assert response.status_code == 200
        lines = response.iter_lines()  # kept: dropping the iterator closes the response
        assert next(lines) == ": connected"
        assert count() == {"count": before + 1}
    deadline = time.monotonic() + 10
    while count()["count"] != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count() == {"count": before}
