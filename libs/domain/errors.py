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
    """An event would be larger than the store's bound on one (`MAX_EVENT_BYTES`): events name
    files by digest, so only an outsized request (a repository of thousands of files, say)
    comes near it, and it is refused rather than stored too large for the bus."""

    code = "payload_too_large"
