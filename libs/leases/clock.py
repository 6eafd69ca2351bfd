"""The lease clock: milliseconds since the epoch, as the events write times.

Every process that claims, heartbeats or sweeps reads its own wall clock: leases assume the
hosts' clocks agree to well within a lease (NTP does; the shortest lease is a second)."""

from __future__ import annotations

import time

MIN_TTL_S, MAX_TTL_S, DEFAULT_TTL_S = 1, 3600, 30


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def until(ttl_s: int, now: int | None = None) -> int:
    return (now_ms() if now is None else now) + ttl_s * 1000
