"""What the channels' projection writes and notifies, and how a waiting `recv` is woken, without
a database: the rows from typed events, the notice, and the waits on it."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from contracts.events import Event
from contracts.payloads.channel import ChannelMessageSent, ChannelOpened
from libs.readmodels.channels import ALL, NOTIFY_LIMIT, channel_rows, message_row, notice
from services.runtime.channel_views import preview
from services.runtime.channel_waits import ChannelWaits

TASK_ID = str(uuid.uuid4())
CHANNEL = f"task_{TASK_ID}"


def opened(seq: int, channel_id: str) -> Event[ChannelOpened]:
    payload = ChannelOpened(
        channel=CHANNEL, task_id=TASK_ID, run_id=None, allowed_kinds=["note"], opened_by_session_id="s"
    )
    return _event(seq, "channel.opened", channel_id, seq, payload)


def sent(seq: int, channel_id: str, n: int) -> Event[ChannelMessageSent]:
    payload = ChannelMessageSent(
        channel=CHANNEL, task_id=TASK_ID, run_id=None, message_id=f"{CHANNEL}:{n}", from_session_id="s",
        to_session_id=None, kind="note", correlation_id="c", reply_to_message_id=None, body={"n": n}, ext={},
    )  # fmt: skip
    return _event(seq, "channel.message_sent", channel_id, seq * 10, payload)


def _event(seq: int, kind: str, channel_id: str, at: int, payload: Any) -> Event[Any]:
    return Event(
        seq=seq, type=kind, workspace_id="w", aggregate_id=channel_id, version=1, occurred_at=at, payload=payload
    )


def test_a_batch_opens_channels_and_counts_each_ones_messages() -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())

    new, active = channel_rows([opened(1, a), sent(2, a, 1), sent(3, b, 7), sent(4, a, 2)])

    assert [(r["channel_id"], r["messages"], r["opened_at"]) for r in new] == [(a, 0, 1)]
    assert {r["channel_id"]: (r["messages"], r["last_activity_at"]) for r in active} == {a: (2, 40), b: (1, 30)}
    row = message_row(sent(9, a, 3))
    assert (row["seq"], row["channel_id"], row["message_id"], row["body"]) == (9, a, f"{CHANNEL}:3", {"n": 3})


def test_the_notice_names_the_channels_or_all_when_too_many() -> None:
    ids = [str(uuid.uuid4()) for _ in range(3)]
    assert notice([ids[1], ids[0], ids[1]]) == ",".join(sorted(ids[:2]))
    assert notice([str(uuid.uuid4()) for _ in range(NOTIFY_LIMIT // 36 + 1)]) == ALL


def test_a_preview_is_the_bodys_start_as_text() -> None:
    assert preview("plain") == "plain"
    assert preview({"a": [1, None]}) == '{"a":[1,null]}'
    assert preview(None) == "null"
    long = preview("x" * 500)
    assert len(long) == 200 and long.endswith("…")


async def test_a_waiter_is_woken_by_a_notice_naming_its_channel_only() -> None:
    waits = ChannelWaits("postgresql://unused")  # its listener is never started here
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    found: list[list[int]] = [[], [], [7]]
    looks: list[float] = []

    async def look() -> list[int]:
        looks.append(time.monotonic())
        return found[len(looks) - 1]

    async def notify() -> None:
        await asyncio.sleep(0.05)
        waits.notified(other)  # not its channel: no look
        await asyncio.sleep(0.05)
        waits.notified(f"{other},{mine}")
        await asyncio.sleep(0.05)
        waits.notified(ALL)

    started = time.monotonic()
    result, _ = await asyncio.gather(waits.until_some(mine, look, timeout=5), notify())

    assert result == [7]
    assert len(looks) == 3 and looks[1] - started >= 0.09, "looked again only for its own channel's notice"
    assert time.monotonic() - started < 0.5
    assert waits.waiting == 0


async def test_a_waiter_with_no_message_answers_empty_at_its_timeout() -> None:
    waits = ChannelWaits("postgresql://unused")
    looks = 0

    async def look() -> list[int]:
        nonlocal looks
        looks += 1
        return []

    started = time.monotonic()
    assert await waits.until_some(str(uuid.uuid4()), look, timeout=0.2) == []
    assert 0.2 <= time.monotonic() - started < 0.5 and looks == 2
    assert waits.waiting == 0
