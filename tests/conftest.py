"""Shared fixtures: the embedded stack (real PostgreSQL, NATS JetStream, six services)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from libs.devstack.stack import Ports, Stack

# The in-process model server's fixtures (`running_server`, `script`).
pytest_plugins = ["tests.servers"]


CLAIM_WINDOW_S = 30


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """All six services as processes on free ports, against the local model server."""
    data_dir = Path(tmp_path_factory.mktemp("stack"))
    # Tests never need (nor use) real provider keys: the services inherit this environment.
    saved = {k: os.environ.pop(k) for k in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN") if k in os.environ}
    # A container worker that has not claimed its run in this long is given up (e2e: one that hangs
    # at its start); the ones that work claim theirs within seconds.
    settings = {"LOG_LEVEL": "INFO", "WORKER_CLAIM_WINDOW_S": str(CLAIM_WINDOW_S)}
    with Stack(data_dir, Ports.free(), extra_env=settings) as running:
        created = running.create_workspace("default", "default")
        assert created is not None
        running.api_key = created["apiKey"]
        yield running
    os.environ.update(saved)
