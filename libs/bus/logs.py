"""The LOGS stream: live task logs, kept with bounded retention.

Services publish `LogEntry` messages on `logs.<workspace>.<task id>` through a `LogPublisher`
(redacted, batched, off the caller's path); the gateway reads one task's subject with a
`LogTail` per WebSocket client. Log entries are not events: nothing reacts to them and losing
the oldest to the stream's limits is expected.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging

import msgspec
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy, DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from contracts.logs import LOGS_STREAM, LOGS_SUBJECTS, LogEntry, log_subject
from libs.config import LogRetention
from libs.observability.logs import configured_secrets, redact
from libs.observability.metrics import LOG_ENTRIES

log = logging.getLogger(__name__)

# One entry is one line for a person to read; a whole file pasted into a log line is cut
# here, so a first message of a task's backlog stays a size a browser handles.
MAX_MESSAGE_CHARS = 4096
MAX_MSG_BYTES = 64 * 1024  # the stream refuses anything larger (a publisher that skips the cut)
_TRUNCATED = " [truncated]"

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(LogEntry)


def logs_stream_config(retention: LogRetention) -> StreamConfig:
    return StreamConfig(
        name=LOGS_STREAM,
        subjects=[LOGS_SUBJECTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD,
        max_age=retention.max_age_s,
        max_msgs_per_subject=retention.max_per_task,
        max_bytes=retention.max_bytes,
        max_msg_size=MAX_MSG_BYTES,
        num_replicas=retention.replicas,
    )


async def ensure_logs_stream(js: JetStreamContext, retention: LogRetention | None = None) -> None:
    """Declares the LOGS stream (add, or update to these limits), as every process that uses it does."""
    config = logs_stream_config(retention or LogRetention())
    try:
        await js.stream_info(LOGS_STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


class LogPublisher:
    """Publishes task log entries to the LOGS stream from a background task.

    `emit` only redacts, encodes and queues, so an agent's hot path pays no round trip per
    line; the background task publishes whatever has queued with `publish_async` and then
    awaits the acks, batch by batch. Entries that cannot be stored (the buffer is full, NATS
    does not acknowledge within `ack_timeout_s`) are counted and dropped: logs never hold up
    or fail the work they describe.
    """

    def __init__(
        self, js: JetStreamContext, *, max_pending: int = 10_000, batch: int = 256, ack_timeout_s: float = 5.0
    ) -> None:
        self._js = js
        self._max_pending = max_pending
        self._batch = batch
        self._ack_timeout_s = ack_timeout_s
        self._secrets = configured_secrets()
        # (subject, payload); a deque so that `emit` may also be called from worker threads.
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._dropped = 0

    def emit(self, workspace_id: str, entry: LogEntry) -> None:
        """Queues one entry for `logs.<workspace_id>.<entry.task_id>`; never blocks, never raises.
        Before `start` entries wait in the buffer; after `close` they are dropped."""
        try:
            full = len(self._pending) >= self._max_pending
            if full or self._closing or not _is_token(workspace_id) or not _is_token(entry.task_id):
                self._drop()
                return
            message = redact(entry.message, self._secrets)
            if len(message) > MAX_MESSAGE_CHARS:
                message = message[: MAX_MESSAGE_CHARS - len(_TRUNCATED)] + _TRUNCATED
            payload = _encoder.encode(msgspec.structs.replace(entry, message=message))
            self._pending.append((log_subject(workspace_id, entry.task_id), payload))
            self._wake_up()
        except Exception:
            self._drop()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._task = asyncio.create_task(self._publish_forever(), name="log-publisher")

    async def close(self) -> None:
        """Publishes what is queued, then stops. Waits at most two ack timeouts: with NATS
        unreachable, a full buffer would otherwise hold a shutdown for minutes."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=2 * self._ack_timeout_s)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            unpublished = len(self._pending)
            self._pending.clear()
            LOG_ENTRIES.labels("dropped").inc(unpublished)
            log.warning("stopped with %d log entries unpublished", unpublished)

    def _wake_up(self) -> None:
        if self._loop is None:
            return  # not started: `start` publishes what queued meanwhile
        try:
            on_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self._wake.set()
        else:
            self._loop.call_soon_threadsafe(self._wake.set)

    def _drop(self) -> None:
        self._dropped += 1
        LOG_ENTRIES.labels("dropped").inc()

    async def _publish_forever(self) -> None:
        reported = 0
        while self._pending or not self._closing:
            if not self._pending:
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = [self._pending.popleft() for _ in range(min(self._batch, len(self._pending)))]
            try:
                await self._publish(batch)
            except Exception:
                log.exception("publishing %d log entries failed", len(batch))
                LOG_ENTRIES.labels("failed").inc(len(batch))
            if self._dropped > reported:
                log.warning("%d log entries dropped (buffer full or not publishable)", self._dropped - reported)
                reported = self._dropped

    async def _publish(self, batch: list[tuple[str, bytes]]) -> None:
        acks: list[asyncio.Future[object]] = []
        failed = 0
        for subject, payload in batch:
            try:
                acks.append(await self._js.publish_async(subject, payload))
            except Exception:
                failed += 1
        if acks:
            done, late = await asyncio.wait(acks, timeout=self._ack_timeout_s)
            for ack in late:
                ack.cancel()  # releases its slot in the client's in-flight limit
            failed += len(late) + sum(1 for ack in done if ack.exception() is not None)
        LOG_ENTRIES.labels("stored").inc(len(batch) - failed)
        if failed:
            LOG_ENTRIES.labels("failed").inc(failed)
            log.warning("%d of %d log entries were not stored", failed, len(batch))


def _is_token(value: str) -> bool:
    """One subject token: an id with a dot or a wildcard would publish to someone else's subject."""
    return bool(value) and not any(c in value for c in ".*> \t\r\n")


class LogTail:
    """One reader of one task's logs: what the stream holds when it opens, then each new entry.

    Each reader has its own ordered consumer (in memory, no acks), so several readers of one
    task each keep their own position. Entries are buffered as they arrive; `take` hands over
    whatever has arrived since the last call, so entries that arrive together travel together.
    """

    # How long a catch-up waits without a single message before it takes what it has: the
    # message it waits for may have just been removed by the stream's limits.
    STALL_S = 1.0

    def __init__(self, js: JetStreamContext, workspace_id: str, task_id: str, *, limit: int = 50_000) -> None:
        self._js = js
        self.subject = log_subject(workspace_id, task_id)
        self._limit = limit
        self._entries: list[LogEntry] = []
        self._arrived = asyncio.Event()  # entries are waiting to be taken
        self._progress = asyncio.Event()  # a message arrived (catch-up waits on this)
        self._seq = 0  # stream sequence of the last message received
        self._sub: JetStreamContext.PushSubscription | None = None
        self.overflowed = False

    async def open(self) -> list[LogEntry]:
        """Subscribes; returns every entry stored up to now."""
        target = await self._last_stored()
        self._sub = await self._js.subscribe(
            self.subject,
            stream=LOGS_STREAM,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.ALL,
            cb=self._on_message,
            # If this process dies without closing, the server removes the consumer itself.
            inactive_threshold=60.0,
        )
        await self._reach(target)
        return self.take()

    async def rest(self) -> list[LogEntry]:
        """Every entry stored up to now that has not been taken yet (the last ones of a task)."""
        await self._reach(await self._last_stored())
        return self.take()

    async def wait(self) -> None:
        """Returns once there are entries to take (or the reader overflowed)."""
        await self._arrived.wait()

    def take(self) -> list[LogEntry]:
        entries, self._entries = self._entries, []
        self._arrived.clear()
        return entries

    async def close(self) -> None:
        """Unsubscribes and deletes the consumer; safe to call more than once."""
        sub, self._sub = self._sub, None
        if sub is None:
            return
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            # An ordered consumer is re-created under a new name after a reset: ask for the current one.
            info = await sub.consumer_info()
            await self._js.delete_consumer(LOGS_STREAM, info.name)

    async def _last_stored(self) -> int:
        try:
            return (await self._js.get_last_msg(LOGS_STREAM, self.subject)).seq or 0
        except NotFoundError:
            return 0

    async def _reach(self, seq: int) -> None:
        while self._seq < seq and not self.overflowed:
            self._progress.clear()
            try:
                async with asyncio.timeout(self.STALL_S):
                    await self._progress.wait()
            except TimeoutError:
                return

    async def _on_message(self, msg: Msg) -> None:
        seq = msg.metadata.sequence.stream
        if seq <= self._seq:
            return  # never twice, whatever a consumer reset replays
        self._seq = seq
        self._progress.set()
        if self.overflowed:
            return
        try:
            entry = _decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("skipping a malformed log entry at %s seq %d", msg.subject, self._seq)
            return
        if len(self._entries) >= self._limit:
            # The client reads slower than the task logs: stop buffering; it reconnects.
            self.overflowed = True
        else:
            self._entries.append(entry)
        self._arrived.set()
