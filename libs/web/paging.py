"""Cursors and times in a list's query string (spec 003's `/api/tasks` family).

A cursor is opaque to the client: where the last page ended, with the kind of list it belongs
to, as URL-safe base64 of a small JSON array. It only says where to go on; what the caller may
see is decided by the query, so a cursor edited by hand can skip items but never show another
workspace's. One that is not a cursor of this list is a 400.

`since` is a time as a client has one at hand: epoch milliseconds (`1767225600000`) or an
ISO 8601 time (`2026-01-01T00:00:00Z`, `2026-01-01`); one without a UTC offset is UTC.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec

from libs.web.errors import ApiError

TASKS, HISTORY = "tasks", "history"
MAX_CURSOR = 200  # characters: far more than any cursor given out takes
MAX_MS = 10**15  # about year 33658: PostgreSQL's bigint holds it, a datetime does not go that far

SINCE_WORDS = "expected epoch milliseconds or an ISO 8601 time, such as 2026-01-31T12:00:00Z"


def encode_cursor(kind: str, *position: int | str) -> str:
    raw = msgspec.json.encode([kind, *position])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decoded(text: str) -> list[Any]:
    if len(text) > MAX_CURSOR:
        raise ValueError("too long")
    padded = text + "=" * (-len(text) % 4)
    value = msgspec.json.decode(base64.b64decode(padded, altchars=b"-_", validate=True))
    if not isinstance(value, list):
        raise ValueError("not a list")
    return value


def _refused() -> ApiError:
    return ApiError(400, "invalid_cursor", "cursor: not a cursor this list gave out; start again without one")


def tasks_cursor(text: str) -> tuple[int, str]:
    """The (`created_at`, task id) a task list's page ended at."""
    try:
        kind, created_at, task_id = _decoded(text)
        ok = kind == TASKS and _is_ms(created_at) and str(uuid.UUID(task_id)) == task_id
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError):
        raise _refused() from None
    if not ok:
        raise _refused()
    return created_at, task_id


def history_cursor(text: str) -> int:
    """The seq a history page ended at."""
    try:
        kind, seq = _decoded(text)
        ok = kind == HISTORY and _is_ms(seq)
    except (ValueError, TypeError, binascii.Error, msgspec.DecodeError):
        raise _refused() from None
    if not ok:
        raise _refused()
    return int(seq)


def _is_ms(value: object) -> bool:
    return type(value) is int and 0 <= value < MAX_MS


def since_ms(text: str) -> int:
    """`since` as epoch milliseconds."""
    if text.isascii() and text.isdigit():
        if len(text) > 15:
            raise ApiError(400, "invalid_request", f"since: {SINCE_WORDS}")
        return int(text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid_request", f"since: {SINCE_WORDS}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)
