"""Pipelined JetStream publishes whose every answer comes back: an ack or a refusal.

nats-py's `publish_async` leaves the future of a refused publish pending for ever (its reply
handler raises the stream's error instead of setting it on the future), and the outbox relay
needs refusals: they are how `Nats-Expected-Last-Sequence` keeps the stream in log order. So
this is the JetStream publish protocol itself: a core publish with a reply subject under one
inbox subscription, the answer decoded with msgspec and set on the publish's future.
"""

from __future__ import annotations

import asyncio
import itertools

import msgspec
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription


class PubAck(msgspec.Struct, frozen=True):
    stream: str
    seq: int
    duplicate: bool = False


class PublishRefused(Exception):
    """The stream answered a publish with an error (`err_code` is JetStream's own code)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code, self.err_code, self.description = code, err_code, description


# JetStream's err_code for a publish whose Nats-Expected-Last-Sequence does not hold.
WRONG_LAST_SEQUENCE = 10071


class _Error(msgspec.Struct, frozen=True):
    code: int
    description: str = ""
    err_code: int = 0


class _Answer(msgspec.Struct, frozen=True):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _Error | None = None


_decode = msgspec.json.Decoder(_Answer).decode


class Publisher:
    """Publishes to JetStream without waiting; `publish` returns a future of the answer."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix = ""
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[PubAck]] = {}
        self._sub: Subscription | None = None

    async def start(self) -> None:
        self._prefix = self._nc.new_inbox() + "."
        self._sub = await self._nc.subscribe(self._prefix + "*", cb=self._answered)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    @property
    def max_payload(self) -> int:
        """The most one message may carry, as the server told the connection."""
        return self._nc.max_payload

    @property
    def reconnects(self) -> int:
        """How often the connection was made again: answers to what was sent before are lost."""
        return int(self._nc.stats["reconnects"])

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future[PubAck]:
        token = str(next(self._tokens))
        future: asyncio.Future[PubAck] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return future

    async def _answered(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix) :], None)
        if future is None or future.done():
            return
        status = (msg.headers or {}).get("Status")
        if status:  # no stream listens on the subject (503), or another status without a body
            future.set_exception(
                PublishRefused(int(status), 0, (msg.headers or {}).get("Description", "no responders"))
            )
            return
        try:
            answer = _decode(msg.data)
        except msgspec.DecodeError as e:
            future.set_exception(PublishRefused(0, 0, f"unreadable answer: {e}"))
            return
        if answer.error is not None:
            error = answer.error
            future.set_exception(PublishRefused(error.code, error.err_code, error.description))
        else:
            future.set_result(PubAck(answer.stream, answer.seq, answer.duplicate))
