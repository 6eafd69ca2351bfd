"""Executor: owns Runs; runs each dispatched subtask with an LLM agent, publishes approved work."""
