"""Sending commands to the aggregate owners over NATS request/reply, from an HTTP edge."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from faststream.nats import NatsBroker
from nats.errors import MaxPayloadError, NoRespondersError

from contracts.commands import CommandReply
from libs.web.errors import ApiError

R = TypeVar("R", bound=msgspec.Struct)
_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {}


async def send(
    broker: NatsBroker, subject: str, command: msgspec.Struct, timeout: float, reply_type: type[R] = CommandReply
) -> R:
    """The owner's reply (`reply_type`, which has an `error`); that error, or no answer, as an ApiError."""
    owner = subject.split(".")[1]
    try:
        message = await broker.request(msgspec.json.encode(command), subject, timeout=timeout)
    except TimeoutError:
        raise ApiError(503, "service_unavailable", f"no answer from {owner} in time") from None
    except NoRespondersError:
        raise ApiError(503, "service_unavailable", f"no {owner} is running") from None
    except MaxPayloadError:
        raise ApiError(413, "payload_too_large", "the request is larger than the bus carries") from None
    decoder = _decoders.get(reply_type) or _decoders.setdefault(reply_type, msgspec.json.Decoder(reply_type))
    reply: R = decoder.decode(message.body)
    error = getattr(reply, "error", None)
    if error is not None:
        raise ApiError(error.status, error.error, error.message)
    return reply
