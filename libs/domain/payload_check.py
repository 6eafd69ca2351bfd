"""Every event's payload is checked against its Struct when the event is made.

msgspec checks types only when it decodes, so a payload Struct built with a wrong type (a string
where an int is declared, a UUID where a string is) is emitted without a word, applied to the live
aggregate, and stored; every reader then decodes it otherwise, or refuses it, and the projector
stops on it for every workspace. So an event class's `__post_init__` (`libs.domain.base`) asks
that its payload be exactly what a reader decodes from it: converted from its JSON form
(`to_builtins`) to the Struct the event class declares, it must equal itself. That catches a
wrong type at any depth, a Struct where another is declared, and a value that would come back
as something else (a dict where a nested Struct is declared, a tuple, a UUID): the aggregate a
handler changes and the one rebuilt from the log are then the same.

Always on, not only in tests: it runs where the bug is made, in the emitter's stack, before
anything is applied or stored, and it costs little. An event is made once (loading builds events
without `__init__`: `libs.eventstore.mapper`), and the round trip is msgspec's, in C: 1.7 us an
event on average over every event type of a task's whole life (`tests/unit/test_payloads.py`),
0.3 ms for a dispatch naming 300 files, on the 2-core development machine. RW-1 side by side
with the commit before (`just bench-compare`, 3 rounds of 400 tasks) moved the emitting
services' CPU per task by +0.5 ms of 41 ms, within that run's noise (the services that emit no
event moved as much). A check in Python of the same depth would cost more than this round trip,
and a shallower one would miss a wrong type inside a nested Struct or a map.
"""

from __future__ import annotations

from typing import Any

import msgspec


class PayloadTypeError(TypeError):
    """A payload that is not what its event class declares: a bug in its emitter, never input
    to refuse (so not a DomainError, which handlers pass over)."""


def check_payload(event_class: type, declared: type[msgspec.Struct], payload: Any) -> None:
    """Raises PayloadTypeError unless `payload` equals itself converted from its JSON form to
    `declared`."""
    name = event_class.__qualname__
    if type(payload) is not declared:
        raise PayloadTypeError(f"{name} carries a {declared.__name__}, not a {type(payload).__name__}")
    try:
        decoded = msgspec.convert(msgspec.to_builtins(payload), declared)
    except (msgspec.ValidationError, TypeError) as exc:
        raise PayloadTypeError(f"{name}: {declared.__name__} {exc}") from None
    if decoded != payload:
        fields = [f for f in declared.__struct_fields__ if getattr(decoded, f) != getattr(payload, f)]
        raise PayloadTypeError(f"{name}: {declared.__name__} would be read back otherwise: {', '.join(fields)}")
