"""Prometheus metrics: defined once here so every service exports the same names."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter("orchestrator_events_handled_total", "Events handled by a durable consumer", ["consumer"])
CONSUMER_BATCH = Histogram(
    "orchestrator_consumer_batch_size",
    "Messages per fetched batch",
    ["consumer"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500),
)
CONSUMER_ERRORS = Counter("orchestrator_consumer_errors_total", "Batches redelivered", ["consumer", "reason"])
COMMANDS = Counter("orchestrator_commands_total", "Commands handled", ["command", "outcome"])
EVENTS_RELAYED = Counter("orchestrator_events_relayed_total", "Events published to JetStream by the relay")
RELAY_POSITION = Gauge("orchestrator_relay_position", "Last seq the outbox relay published")
PROJECTOR_POSITION = Gauge("orchestrator_projector_position", "Last seq applied to the read models")
# No workspace label: /metrics is open to scrapers, and workspace ids are not theirs to list.
SSE_CONNECTIONS = Gauge("orchestrator_sse_connections", "Open SSE subscribers, all workspaces")
LLM_CALLS = Counter("orchestrator_llm_calls_total", "Provider calls", ["provider", "outcome"])
LLM_LATENCY = Histogram("orchestrator_llm_call_seconds", "Provider call latency", ["provider"])
LIVE_LOG_CONNECTIONS = Gauge("orchestrator_live_log_connections", "Open task-log WebSockets")
RUN_SLOTS = Gauge("orchestrator_run_slots", "Agent runs an executor process carries at once (MAX_CONCURRENT_RUNS)")
# state: working (holds a slot), waiting (for a person's answer), resuming (answered, waiting for a slot)
RUNS = Gauge("orchestrator_runs", "Agent runs in an executor process", ["state"])
