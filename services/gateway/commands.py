"""Sending commands to the aggregate owners over NATS request/reply."""

from __future__ import annotations

import msgspec
from faststream.nats import NatsBroker

from contracts.commands import CommandReply
from libs.web.errors import ApiError

_decoder = msgspec.json.Decoder(CommandReply)


async def send(broker: NatsBroker, subject: str, command: msgspec.Struct, timeout: float) -> CommandReply:
    try:
        message = await broker.request(msgspec.json.encode(command), subject, timeout=timeout)
    except TimeoutError:
        raise ApiError(503, "service_unavailable", f"no answer from {subject.split('.')[1]} in time") from None
    reply = _decoder.decode(message.body)
    if reply.error is not None:
        raise ApiError(reply.error.status, reply.error.error, reply.error.message)
    return reply
