"""What a command's owner answers when its handler cannot do what was asked."""

from __future__ import annotations

import eventsourcing.persistence
import msgspec
import psycopg

from contracts.commands import CommandError, CommandReply
from libs.domain.errors import EventTooLarge
from libs.runtime import _bytes_handler


async def test_an_event_too_large_for_the_bus_is_a_413_reply_not_a_failure() -> None:
    async def handler(raw: bytes) -> bytes:
        raise EventTooLarge("an event of 70000000 bytes is larger than the 67108864 an event may be")

    answer = await _bytes_handler("cmd.planner.submit", handler)(b"{}")

    reply = msgspec.json.decode(answer, type=CommandReply)
    assert reply.error == CommandError(
        413, "payload_too_large", "an event of 70000000 bytes is larger than the 67108864 an event may be"
    )


async def test_a_bug_is_a_500_reply() -> None:
    async def handler(raw: bytes) -> bytes:
        raise KeyError("tasks")

    answer = await _bytes_handler("cmd.planner.submit", handler)(b"{}")

    assert msgspec.json.decode(answer, type=CommandReply).error == CommandError(500, "internal_error", "command failed")


async def test_the_database_away_is_a_503_reply_to_try_again() -> None:
    async def handler(raw: bytes) -> bytes:
        # What the event store raises when PostgreSQL ended its connection (a restart).
        try:
            raise psycopg.errors.AdminShutdown("terminating connection due to administrator command")
        except psycopg.Error as exc:
            raise eventsourcing.persistence.OperationalError(str(exc)) from exc

    answer = await _bytes_handler("cmd.review.decide", handler)(b"{}")

    assert msgspec.json.decode(answer, type=CommandReply).error == CommandError(
        503, "service_unavailable", "the database cannot be reached at the moment; try again"
    )
