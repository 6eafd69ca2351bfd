"""Metrics, logs and health checks shared by every service."""
