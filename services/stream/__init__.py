"""Stream: the read side. Outbox relay to JetStream, read-model projector, SSE fan-out."""
