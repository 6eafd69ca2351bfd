"""Sending commands to the aggregate owners over NATS request/reply."""

from __future__ import annotations

import msgspec
from faststream.nats import NatsBroker
from nats.errors import MaxPayloadError, NoRespondersError

from contracts.commands import CommandReply
from libs.web.errors import ApiError

_decoder = msgspec.json.Decoder(CommandReply)


async def send(broker: NatsBroker, subject: str, command: msgspec.Struct, timeout: float) -> CommandReply:
    owner = subject.split(".")[1]
    try:
        message = await broker.request(msgspec.json.encode(command), subject, timeout=timeout)
    except TimeoutError:
        raise ApiError(503, "service_unavailable", f"no answer from {owner} in time") from None
    except NoRespondersError:
        raise ApiError(503, "service_unavailable", f"no {owner} is running") from None
    except MaxPayloadError:
        raise ApiError(413, "payload_too_large", "the request is larger than the bus carries") from None
    reply = _decoder.decode(message.body)
    if reply.error is not None:
        raise ApiError(reply.error.status, reply.error.error, reply.error.message)
    return reply
