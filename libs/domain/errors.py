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
    """An event would be larger than any reader of the log should hold in memory (the store's
    bound, far above a bus message: larger ones than that travel by reference)."""

    code = "payload_too_large"
