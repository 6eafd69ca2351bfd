"""ASGI apps served by uvicorn in a thread of the test process, on a port the OS picked, and the
fixtures that serve the local model server that way (loaded for every test by tests/conftest.py)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from libs.config import Settings
from libs.modelserver.app import create_app
from libs.modelserver.script import Script


@contextlib.contextmanager
def serve_in_thread(app: Any, graceful_s: float = 1.0) -> Iterator[str]:
    """Serves `app` until the block ends; yields its base URL.

    Binding port 0 here and handing uvicorn the socket avoids a free-port race. The graceful
    shutdown is short: delay tests leave handlers sleeping after their client gave up."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=graceful_s))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{type(app).__name__} did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@dataclass(frozen=True)
class RunningServer:
    url: str
    script: Script

    def settings(self, service: str, api_key: str, **overrides: Any) -> Settings:
        """A service's settings with both provider SDKs pointed at this server."""
        return Settings(
            service=service,
            database_url=overrides.pop("database_url", "postgresql://unused"),
            anthropic_base_url=self.url,
            anthropic_api_key=api_key,
            openai_base_url=f"{self.url}/v1",
            openai_api_key=api_key,
            **overrides,
        )


@contextlib.contextmanager
def serve_model_server() -> Iterator[RunningServer]:
    """The local model server in-process, scripted directly through its `Script`."""
    script = Script()
    with serve_in_thread(create_app(script)) as url:
        yield RunningServer(url=url, script=script)


def unscripted(server: RunningServer) -> Script:
    """The server's script back to its defaults, for a test that scripts it afresh."""
    server.script.clear()
    server.script.set_default()
    return server.script


@pytest.fixture(scope="module")
def running_server() -> Iterator[RunningServer]:
    """One in-process model server per test module."""
    with serve_model_server() as server:
        yield server


@pytest.fixture
def script(running_server: RunningServer) -> Script:
    """The module's model server, scripted afresh for this test."""
    return unscripted(running_server)
