"""The LOGS stream on a real JetStream: what LogPublisher stores, its limits, LogTail readers."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import msgspec
import nats
import pytest
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts.logs import LOGS_STREAM, LogEntry, log_subject, worker_id
from libs.bus.logs import MAX_MESSAGE_CHARS, LogPublisher, LogTail, ensure_logs_stream
from libs.config import LogRetention

pytestmark = pytest.mark.integration

WORKSPACE = "ws-logs"


@pytest.fixture
async def js(nc: NatsClient) -> JetStreamContext:
    """A JetStream context on a LOGS stream that starts empty."""
    context = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await context.delete_stream(LOGS_STREAM)
    await ensure_logs_stream(context)
    return context


def entry(task_id: str, message: str, level: str = "info") -> LogEntry:
    return LogEntry(
        level=level,  # type: ignore[arg-type]
        message=message,
        timestamp=int(time.time() * 1000),
        worker_id=worker_id(task_id, "1a2b3c4d"),
        task_id=task_id,
    )


async def stored(js: JetStreamContext, task_id: str) -> list[LogEntry]:
    """Every entry the stream holds for the task, oldest first."""
    subject = log_subject(WORKSPACE, task_id)
    info = await js.stream_info(LOGS_STREAM)
    entries = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        with contextlib.suppress(NotFoundError):
            msg = await js.get_msg(LOGS_STREAM, seq=seq)
            if msg.subject == subject:
                entries.append(msgspec.json.decode(msg.data or b"", type=LogEntry))
    return entries


async def test_published_entries_are_stored_in_order_with_secrets_masked(
    js: JetStreamContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "configured-anthropic-key-42")
    task_id = str(uuid.uuid4())
    publisher = LogPublisher(js)
    await publisher.start()
    publisher.emit(WORKSPACE, entry(task_id, "[codegen] calling the model with configured-anthropic-key-42"))
    leaked = "[codegen] env: GITHUB_TOKEN=ghp_abcdefghijklmnop12 OPENAI=sk-proj-ABCDEFGHij"
    publisher.emit(WORKSPACE, entry(task_id, leaked))
    publisher.emit(WORKSPACE, entry(task_id, "[codegen] Wrote src/register.py (2340 bytes)"))
    publisher.emit(WORKSPACE, entry(task_id, "x" * 100_000, level="debug"))
    await publisher.close()

    entries = await stored(js, task_id)
    assert [e.message for e in entries[:3]] == [
        "[codegen] calling the model with [redacted]",
        "[codegen] env: GITHUB_TOKEN=[redacted] OPENAI=[redacted]",
        "[codegen] Wrote src/register.py (2340 bytes)",
    ]
    assert len(entries[3].message) == MAX_MESSAGE_CHARS
    assert entries[3].message.endswith("[truncated]")
    assert {e.worker_id for e in entries} == {f"{task_id[:8]}-1a2b3c4d"}


async def test_emit_never_raises_and_close_publishes_what_was_queued(js: JetStreamContext) -> None:
    task_id = str(uuid.uuid4())
    publisher = LogPublisher(js, max_pending=2)
    # Before start, entries wait in the buffer; past its size they are dropped, not raised.
    publisher.emit(WORKSPACE, entry(task_id, "one"))
    publisher.emit(WORKSPACE, entry(task_id, "two"))
    publisher.emit(WORKSPACE, entry(task_id, "three: no room"))
    # An id that is not one subject token would land on another subject: dropped.
    publisher.emit(WORKSPACE, entry("a.b", "elsewhere"))
    publisher.emit("ws.*", entry(task_id, "elsewhere"))
    await publisher.start()
    await publisher.close()
    assert [e.message for e in await stored(js, task_id)] == ["one", "two"]

    # A handler running in a worker thread may emit too.
    publisher = LogPublisher(js)
    await publisher.start()
    await asyncio.to_thread(publisher.emit, WORKSPACE, entry(task_id, "from a worker thread"))
    await publisher.close()
    assert [e.message for e in await stored(js, task_id)] == ["one", "two", "from a worker thread"]
    assert (await js.stream_info(LOGS_STREAM)).state.messages == 3


async def test_a_publisher_whose_connection_is_gone_neither_raises_nor_hangs(nats_url: str) -> None:
    gone = await nats.connect(nats_url, name="integration-tests-gone")
    publisher = LogPublisher(gone.jetstream(), ack_timeout_s=0.5)
    await publisher.start()
    await gone.close()
    task_id = str(uuid.uuid4())
    publisher.emit(WORKSPACE, entry(task_id, "nobody will store this"))
    async with asyncio.timeout(2):
        await publisher.close()
    publisher.emit(WORKSPACE, entry(task_id, "after close: dropped"))


async def test_the_stream_keeps_a_bounded_number_of_entries_per_task(nc: NatsClient) -> None:
    js = nc.jetstream()
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(LOGS_STREAM)
    await ensure_logs_stream(js, LogRetention(max_per_task=3, max_age_s=3600.0, max_bytes=1024 * 1024))
    busy, quiet = str(uuid.uuid4()), str(uuid.uuid4())
    for i in range(5):
        await js.publish(log_subject(WORKSPACE, busy), msgspec.json.encode(entry(busy, f"line {i}")))
    await js.publish(log_subject(WORKSPACE, quiet), msgspec.json.encode(entry(quiet, "only line")))

    assert [e.message for e in await stored(js, busy)] == ["line 2", "line 3", "line 4"]
    assert [e.message for e in await stored(js, quiet)] == ["only line"]
    config = (await js.stream_info(LOGS_STREAM)).config
    assert (config.max_msgs_per_subject, config.max_age, config.max_bytes) == (3, 3600.0, 1024 * 1024)

    # Declaring it again (another service starting) keeps one stream with the new limits.
    await ensure_logs_stream(js, LogRetention(max_per_task=2))
    assert [e.message for e in await stored(js, busy)] == ["line 3", "line 4"]


async def test_each_tail_gets_the_backlog_at_once_then_new_entries_and_releases_its_consumer(
    js: JetStreamContext,
) -> None:
    task_id, other = str(uuid.uuid4()), str(uuid.uuid4())
    subject = log_subject(WORKSPACE, task_id)
    for message in ("first", "second", "third"):
        await js.publish(subject, msgspec.json.encode(entry(task_id, message)))
    await js.publish(log_subject(WORKSPACE, other), msgspec.json.encode(entry(other, "another task")))

    tails = [LogTail(js, WORKSPACE, task_id), LogTail(js, WORKSPACE, task_id)]
    try:
        for tail in tails:
            assert [e.message for e in await tail.open()] == ["first", "second", "third"]
        assert (await js.stream_info(LOGS_STREAM)).state.consumer_count == 2

        for message in ("fourth", "fifth"):
            await js.publish(subject, msgspec.json.encode(entry(task_id, message)))
        for tail in tails:
            received: list[str] = []
            while len(received) < 2:
                async with asyncio.timeout(5):
                    await tail.wait()
                received += [e.message for e in tail.take()]
            assert received == ["fourth", "fifth"]
    finally:
        for tail in tails:
            await tail.close()
    assert (await js.stream_info(LOGS_STREAM)).state.consumer_count == 0


async def test_a_tail_of_a_task_without_logs_starts_empty(js: JetStreamContext) -> None:
    tail = LogTail(js, WORKSPACE, str(uuid.uuid4()))
    try:
        assert await tail.open() == []
        assert await tail.rest() == []
    finally:
        await tail.close()
