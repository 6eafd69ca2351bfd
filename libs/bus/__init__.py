"""The bus: NATS JetStream for events (through the outbox relay), request/reply for commands."""
