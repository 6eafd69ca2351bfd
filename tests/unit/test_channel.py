"""The Channel aggregate (spec 002's coordination channels): names, message ids, kinds, sizes
and reply threading, without a store."""

from __future__ import annotations

import uuid

import pytest

from contracts.agent_runtime import MESSAGE_KINDS
from contracts.payloads.channel import ChannelMessageSent, ChannelOpened
from libs.domain.channel import (
    KINDS,
    MAX_BODY_BYTES,
    MAX_EXT_BYTES,
    Channel,
    ChannelName,
    MessageRefused,
    channel_id,
    parse_name,
    split_message_id,
)
from libs.observability.logs import redact

WORKSPACE = "team-a"
TASK_ID = str(uuid.uuid4())


def opened(name: str | None = None) -> Channel:
    parsed = parse_name(name or f"task_{TASK_ID}")
    assert parsed is not None
    return Channel.open(WORKSPACE, parsed, TASK_ID, "session-1")


def test_a_channel_is_named_for_its_task_or_run() -> None:
    run_id = str(uuid.uuid4())

    assert parse_name(f"task_{TASK_ID}") == ChannelName("task", TASK_ID)
    assert parse_name(f"run_{run_id}") == ChannelName("run", run_id)
    for wrong in ("task_x", f"TASK_{TASK_ID}", f"task_{TASK_ID.upper()}", f"task-{TASK_ID}", f" task_{TASK_ID}", ""):
        assert parse_name(wrong) is None, wrong


def test_the_same_name_in_another_workspace_is_another_channel() -> None:
    assert channel_id("team-a", f"task_{TASK_ID}") != channel_id("team-b", f"task_{TASK_ID}")
    assert opened().id == channel_id(WORKSPACE, f"task_{TASK_ID}")


def test_messages_are_numbered_in_their_channel() -> None:
    channel = opened()

    first = channel.send("session-1", "status", {"step": 1}, {})
    second = channel.send("session-2", "note", "ok", {"k": "v"})

    assert [first.message_id, second.message_id] == [f"task_{TASK_ID}:1", f"task_{TASK_ID}:2"]
    assert split_message_id(second.message_id) == (f"task_{TASK_ID}", 2)
    assert first.correlation_id != second.correlation_id, "each send starts a thread"
    assert first.to_session_id is None and first.reply_to_message_id is None
    assert (first.task_id, first.run_id, first.channel) == (TASK_ID, None, f"task_{TASK_ID}")
    events = channel.collect_events()
    assert [type(e.payload) for e in events] == [ChannelOpened, ChannelMessageSent, ChannelMessageSent]


def test_a_run_channel_says_its_run_and_task() -> None:
    run_id = str(uuid.uuid4())
    sent = opened(f"run_{run_id}").send("s", "handoff", None, {})

    assert (sent.run_id, sent.task_id, sent.channel) == (run_id, TASK_ID, f"run_{run_id}")


@pytest.mark.parametrize(
    "message_id",
    ["", "x", f"task_{TASK_ID}", f"task_{TASK_ID}:0", f"task_{TASK_ID}:01", f"task_{TASK_ID}:-1", f"task_{TASK_ID}:1x"],
)
def test_a_malformed_message_id_is_none(message_id: str) -> None:
    assert split_message_id(message_id) is None


def test_a_reply_goes_to_the_asker_with_the_threads_correlation_id() -> None:
    channel = opened()
    asked = channel.send("asker", "question", "which?", {}, correlation_id="q-1")

    answer = channel.send("helper", "answer", "this", {}, reply_to=asked.message_id)
    thanks = channel.send("asker", "note", "thanks", {}, correlation_id="q-1", reply_to=answer.message_id)

    assert (answer.to_session_id, answer.correlation_id, answer.reply_to_message_id) == (
        "asker",
        "q-1",
        asked.message_id,
    )
    assert (thanks.to_session_id, thanks.correlation_id) == ("helper", "q-1")


def test_a_reply_to_nothing_or_in_another_thread_is_refused_and_appends_nothing() -> None:
    channel = opened()
    asked = channel.send("asker", "question", "which?", {}, correlation_id="q-1")
    channel.collect_events()
    other = f"task_{uuid.uuid4()}:1"

    for reply_to, code in ((f"task_{TASK_ID}:2", "message_not_found"), (other, "message_not_found")):
        with pytest.raises(MessageRefused) as refused:
            channel.send("helper", "answer", "x", {}, reply_to=reply_to)
        assert refused.value.code == code
    with pytest.raises(MessageRefused) as refused:
        channel.send("helper", "answer", "x", {}, correlation_id="q-2", reply_to=asked.message_id)
    assert refused.value.code == "correlation_mismatch" and refused.value.evidence["expected"] == "q-1"
    assert channel.collect_events() == []


def test_a_kind_the_channel_does_not_take_is_refused_naming_those_it_does() -> None:
    with pytest.raises(MessageRefused) as refused:
        opened().send("s", "chat", "hi", {})

    assert refused.value.code == "message_kind_not_allowed"
    assert refused.value.evidence["allowed_message_kinds"] == list(KINDS)
    assert all(kind in str(refused.value) for kind in KINDS)
    assert KINDS == MESSAGE_KINDS == ("status", "question", "answer", "handoff", "note")


@pytest.mark.parametrize(
    ("body", "ext", "code"),
    [
        ("x" * MAX_BODY_BYTES, {}, "message_too_large"),  # its JSON has the quotes too
        (1, {"k": "v" * MAX_EXT_BYTES}, "message_too_large"),
        (1, {"reply_to_message_id": "m"}, "reserved_metadata"),
    ],
)
def test_a_body_or_ext_over_its_bound_is_refused(body: object, ext: dict, code: str) -> None:
    with pytest.raises(MessageRefused) as refused:
        opened().send("s", "note", body, ext)

    assert refused.value.code == code


def test_a_body_at_its_bound_is_taken() -> None:
    sent = opened().send("s", "note", "x" * (MAX_BODY_BYTES - 2), {"k": "v" * (MAX_EXT_BYTES - 10)})

    assert len(sent.body) == MAX_BODY_BYTES - 2


def test_channel_names_and_message_ids_are_not_masked_as_keys() -> None:
    """The dump and the logs mask what looks like a provider key (`sk-...`): a `task-<id>` name
    would have been."""
    channel = opened()
    sent = channel.send("s", "note", 1, {})

    assert redact(sent.message_id) == sent.message_id and redact(channel.name) == channel.name
