"""The floor benchmark replays the traffic it reports on: its appends and publishes all land."""

from __future__ import annotations

from pathlib import Path

import pytest

from libs.bench.floor import nats_floor, postgres_floor

pytestmark = pytest.mark.integration


def test_every_append_lands_in_the_store(tmp_path: Path) -> None:
    measured = postgres_floor(tmp_path, tasks=20, appends=3, workers=2)

    # the warm-up's 2 tasks, then the measured 20: 3 events each
    assert measured.stored == (2 + 20) * 3


async def test_every_publish_lands_in_the_stream(tmp_path: Path) -> None:
    measured = await nats_floor(tmp_path, tasks=20, messages=5, batch=4)

    # the warm-up's 10 batches of 4, then 20 tasks of 5
    assert measured.stored == 10 * 4 + 20 * 5
