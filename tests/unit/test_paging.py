"""A list's cursor and `since` (spec 003's `/api/tasks` family): a cursor given out leads back to
where its page ended, anything else is a 400 in the family's envelope; `since` takes epoch
milliseconds or an ISO 8601 time."""

from __future__ import annotations

import base64

import pytest

from libs.web import paging
from libs.web.errors import ApiError

TASK = "9d4c2b1a-2222-4b4b-9c9c-000000000001"


def test_a_cursor_leads_back_to_where_its_page_ended() -> None:
    assert paging.tasks_cursor(paging.encode_cursor(paging.TASKS, 1_767_225_600_000, TASK)) == (
        1_767_225_600_000,
        TASK,
    )
    assert paging.history_cursor(paging.encode_cursor(paging.HISTORY, 4711)) == 4711


def test_a_cursor_is_opaque_and_safe_in_a_query_string() -> None:
    cursor = paging.encode_cursor(paging.TASKS, 1_767_225_600_000, TASK)

    assert TASK not in cursor and "1767225600000" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not a cursor",
        "%%%",
        _b64(b"{}"),
        _b64(b"[1, 2, 3]"),
        _b64(b'["history", 12]'),  # another list's
        _b64(b'["tasks", -1, "' + TASK.encode() + b'"]'),
        _b64(b'["tasks", 1.5, "' + TASK.encode() + b'"]'),
        _b64(b'["tasks", 12, "not-a-uuid"]'),
        _b64(b'["tasks", 12, "' + TASK.upper().encode() + b'"]'),
        _b64(b'["tasks", 12]'),
        _b64(b"\xff\xfe"),
        "A" * 300,
    ],
)
def test_anything_but_a_task_lists_cursor_is_refused_with_a_400(cursor: str) -> None:
    with pytest.raises(ApiError) as refused:
        paging.tasks_cursor(cursor)

    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    "cursor", ["", _b64(b'["tasks", 12, "' + TASK.encode() + b'"]'), _b64(b'["history", "12"]'), _b64(b"[]")]
)
def test_anything_but_a_historys_cursor_is_refused_with_a_400(cursor: str) -> None:
    with pytest.raises(ApiError) as refused:
        paging.history_cursor(cursor)

    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1767225600000", 1_767_225_600_000),
        ("0", 0),
        ("2026-01-01T00:00:00Z", 1_767_225_600_000),
        ("2026-01-01T02:00:00+02:00", 1_767_225_600_000),
        ("2026-01-01T00:00:00.250Z", 1_767_225_600_250),
        ("2026-01-01", 1_767_225_600_000),  # no offset: UTC
        ("2026-01-01T00:00:00", 1_767_225_600_000),
    ],
)
def test_since_is_epoch_milliseconds_or_an_iso_time(text: str, ms: int) -> None:
    assert paging.since_ms(text) == ms


@pytest.mark.parametrize("text", ["", "yesterday", "-5", "1.5", "2026-13-01", "١٢٣", "9" * 19])
def test_a_since_that_is_neither_is_a_400_that_says_what_is_expected(text: str) -> None:
    with pytest.raises(ApiError) as refused:
        paging.since_ms(text)

    assert (refused.value.status, refused.value.code) == (400, "invalid_request")
    assert "epoch milliseconds or an ISO 8601 time" in refused.value.message
