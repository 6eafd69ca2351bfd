"""LLM providers through their official SDKs, and the agents' prompt protocol."""
