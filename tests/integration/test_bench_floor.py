"""The floor benchmark replays the traffic it reports on: its appends and publishes all land,
and the CPU it reports is the server's."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.bench.floor import nats_floor, postgres_floor

pytestmark = pytest.mark.integration


def test_every_event_lands_in_the_store_in_the_appends_asked_for(tmp_path: Path) -> None:
    measured = postgres_floor(tmp_path, tasks=200, appends=3, events=7, workers=2)

    # the warm-up's 20 tasks, then the measured 200: 7 events each
    assert measured.stored == (20 + 200) * 7
    assert measured.appends == (20 + 200) * 3
    assert measured.ms_per_task > 0, "the server's CPU over 600 appends is more than a clock tick"


async def test_every_publish_lands_in_the_stream(tmp_path: Path) -> None:
    measured = await nats_floor(tmp_path, tasks=200, messages=5, batch=4)

    # the warm-up's 10 batches of 4, then 200 tasks of 5
    assert measured.stored == 10 * 4 + 200 * 5
    assert measured.ms_per_task > 0, "the server's CPU over 1000 fsynced publishes is more than a clock tick"
