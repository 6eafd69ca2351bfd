"""Named domain errors: each maps to a 4xx at the edge, never to a 500."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"


class IllegalTransition(DomainError):
    code = "invalid_state_transition"


class GateClosed(DomainError):
    code = "gate_closed"


class NotFound(DomainError):
    code = "Not found"


class EventTooLarge(DomainError):
    """An event would be larger than the bus carries in one message: refused before it is
    stored, since the relay could never publish it and every event after it would wait."""

    code = "payload_too_large"
