"""Launch the product's services as separate OS processes and supervise them.

Each service runs in its own session (and so its own process group) so that a
Ctrl-C in the terminal running ``just up`` reaches only the supervisor, which
then stops the services in a controlled order, and so that stopping a service
also stops whatever children it spawned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

logger = logging.getLogger(__name__)

_POLL_INTERVAL_S = 0.05
# Linux; elsewhere (macOS) fall back to coarser checks.
HAVE_PROC = Path("/proc/self/stat").exists()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago.

    Racy by nature (another process may grab it before the caller binds it),
    which is acceptable for tests and local development.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port.

    SO_REUSEADDR makes connections lingering in TIME_WAIT not count as "in
    use", matching what Go and PostgreSQL listeners do when they bind.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def log_tail(path: Path, lines: int = 40) -> str:
    """Last lines of a log file, for error messages that explain themselves."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return f"<no log file at {path}>"
    return "\n".join(text.splitlines()[-lines:])


def pid_alive(pid: int) -> bool:
    """True while pid names a process that has not exited.

    A zombie counts as exited: a server started by another (now gone) process
    is reparented, and PID 1 in a container may be slow to reap it or never
    do so, so a plain ``kill(pid, 0)`` could report it alive forever.
    """
    if not HAVE_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may
    # itself contain spaces or parentheses.
    state = stat.rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")


def wait_pid_exit(pid: int, timeout: float) -> bool:
    """Poll until pid exits; True if it did within timeout."""
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_INTERVAL_S)
    return True


# Servers (PostgreSQL, NATS) started by this Python process, by pid. Holding
# the Popen here rather than in a handle object means dropping a handle neither
# warns nor affects the server, and any handle that stops it can reap it.
_servers: dict[int, subprocess.Popen[bytes]] = {}


def spawn_server(argv: list[str], log_path: Path, cwd: Path, **popen_kwargs: Any) -> int:
    """Start a long-lived server that outlives this Python process; return its pid."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            # Own session: a Ctrl-C meant for `just up` must not reach the
            # server before the services that use it have stopped.
            start_new_session=True,
            **popen_kwargs,
        )
    # The child has its own copy of the log fd; ours is closed on leaving `with`.
    _servers[proc.pid] = proc
    return proc.pid


def server_exited(pid: int) -> bool:
    proc = _servers.get(pid)
    if proc is None:
        return not pid_alive(pid)
    if proc.poll() is None:
        return False
    del _servers[pid]
    return True


def reap_servers() -> None:
    """Collect servers of ours that have exited, e.g. killed by a test.

    An unreaped child stays a zombie, and PostgreSQL's lock-file check
    (``kill(pid, 0)``) mistakes a zombie for a running postmaster.
    """
    for pid in list(_servers):
        server_exited(pid)


def signal_and_wait(pid: int, sig: signal.Signals, timeout: float) -> bool:
    """Send sig to pid; True if it exited within timeout (reaped if it is our child)."""
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
    proc = _servers.get(pid)
    if proc is None:
        return wait_pid_exit(pid, timeout)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    del _servers[pid]
    return True


def read_peak_rss_kb(pid: int) -> int | None:
    """VmHWM (peak resident set size) of a live process, in kB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return None


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    # PermissionError: the group id now belongs to another user's process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class ServiceProcess:
    """One service running as a child OS process with its output in a log file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    cwd: Path | None = None
    # SIGTERM is what docker compose and systemd send, so services behave the
    # same under `just up` as in a container.
    stop_signal: signal.Signals = signal.SIGTERM

    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _last_peak_rss_kb: int | None = field(default=None, init=False, repr=False)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_running():
            raise RuntimeError(f"service {self.name} is already running (pid {self.pid})")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._last_peak_rss_kb = None
        # Append so that a restarted service keeps the previous run's output.
        # The child keeps its own copy of the fd; ours closes on leaving `with`.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )
        logger.info("started %s (pid %d): %s; log %s", self.name, self._proc.pid, self.argv, self.log_path)

    def wait_healthy(self, timeout: float = 30) -> None:
        """Block until health_url answers 200; fail fast if the process dies."""
        proc = self._require_started()
        if self.health_url is None:
            if proc.poll() is not None:
                raise RuntimeError(self._died_message())
            return
        deadline = time.monotonic() + timeout
        last_error = "no attempt yet"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(self._died_message())
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                    if resp.status == 200:
                        logger.info("%s is healthy at %s", self.name, self.health_url)
                        return
                    last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as exc:
                last_error = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last_error = str(exc)
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"service {self.name} not healthy at {self.health_url} after {timeout}s "
                    f"(last: {last_error}); log tail of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 10) -> int | None:
        """Ask the whole process group to stop, SIGKILL it if it does not in time.

        Returns the exit code (None if the service was never started).
        """
        if self._proc is None:
            return None
        proc = self._proc
        if proc.poll() is None:
            self._remember_peak_rss()
            _signal_group(proc.pid, self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %ss, sending SIGKILL", self.name, timeout)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
            # The leader may exit before its children; don't leave them behind.
            # Only right after reaping it ourselves: later the pid (= group id)
            # could belong to an unrelated process.
            _signal_group(proc.pid, signal.SIGKILL)
        logger.info("stopped %s (exit code %s)", self.name, proc.returncode)
        return proc.returncode

    def kill(self) -> None:
        """SIGKILL the process group at once (simulates a crash)."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._remember_peak_rss()
            _signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait()
        logger.info("killed %s", self.name)

    def peak_rss_kb(self) -> int | None:
        """Peak RSS of the service's main process; after it stopped, the last value seen."""
        if self.is_running():
            assert self._proc is not None
            value = read_peak_rss_kb(self._proc.pid)
            if value is not None:
                self._last_peak_rss_kb = value
        return self._last_peak_rss_kb

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def _remember_peak_rss(self) -> None:
        # /proc/<pid> disappears once the process is reaped, so read it first.
        self.peak_rss_kb()

    def _require_started(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"service {self.name} was not started")
        return self._proc

    def _died_message(self) -> str:
        assert self._proc is not None
        return (
            f"service {self.name} exited with code {self._proc.returncode} before becoming healthy; "
            f"log tail of {self.log_path}:\n{log_tail(self.log_path)}"
        )


class Supervisor:
    """Starts services in order and stops them in reverse order."""

    def __init__(self, services: Iterable[ServiceProcess] = ()) -> None:
        self.services: list[ServiceProcess] = list(services)

    def add(self, service: ServiceProcess) -> ServiceProcess:
        self.services.append(service)
        return service

    def __getitem__(self, name: str) -> ServiceProcess:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def __iter__(self) -> Iterator[ServiceProcess]:
        return iter(self.services)

    def start_all(self, health_timeout: float = 30) -> None:
        """Start every service, then wait for all of them to be healthy.

        Starting all before waiting lets the services boot in parallel. If any
        fails, the ones already started are stopped so nothing is left behind.
        """
        try:
            for service in self.services:
                service.start()
            for service in self.services:
                service.wait_healthy(health_timeout)
        except BaseException:
            self.stop_all()
            raise

    def stop_all(self, timeout: float = 10) -> None:
        for service in reversed(self.services):
            try:
                service.stop(timeout)
            except Exception:
                # Keep going: one stuck service must not leave the others running.
                logger.exception("failed to stop %s", service.name)

    def __enter__(self) -> Self:
        self.start_all()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()
