"""`orchestrator-admin`: workspaces and their API keys, through the gateway's admin API; agent
sessions, through the runtime service."""
