"""The embedded PostgreSQL, NATS and process launchers against the real binaries."""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import psycopg
import pytest
from nats.js.api import StorageType, StreamConfig

from libs.devstack.nats import EmbeddedNats
from libs.devstack.postgres import EmbeddedPostgres
from libs.devstack.processes import ServiceProcess, Supervisor, free_port, pid_alive, wait_pid_exit

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path / "pg")
    yield server
    server.stop()
    assert not server.is_running()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    server = EmbeddedNats(tmp_path / "nats", port=free_port(), monitor_port=free_port())
    yield server
    server.stop()
    assert not server.is_running()


def http_server(tmp_path: Path, name: str = "http") -> ServiceProcess:
    port = free_port()
    return ServiceProcess(
        name=name,
        argv=[
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path),
        ],
        env={"PYTHONUNBUFFERED": "1"},
        log_path=tmp_path / f"{name}.log",
        health_url=f"http://127.0.0.1:{port}/",
    )


# -- PostgreSQL ---------------------------------------------------------------


def test_postgres_sync_query_and_orchestrator_database(postgres: EmbeddedPostgres) -> None:
    uri = postgres.start()
    with psycopg.connect(uri) as conn:
        row = conn.execute("SELECT current_database(), current_setting('max_connections')::int").fetchone()
    assert row is not None
    assert row[0] == "orchestrator"
    assert row[1] >= 200


async def test_postgres_async_query(postgres: EmbeddedPostgres) -> None:
    uri = postgres.start()
    async with await psycopg.AsyncConnection.connect(uri) as conn:
        cur = await conn.execute("SELECT 40 + 2")
        assert await cur.fetchone() == (42,)


def test_postgres_data_survives_restart(postgres: EmbeddedPostgres) -> None:
    uri = postgres.start()
    with psycopg.connect(uri) as conn:
        conn.execute("CREATE TABLE survivor (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO survivor VALUES (1, 'still here')")
    pid = postgres.pid
    assert pid is not None
    postgres.stop()
    assert not pid_alive(pid)
    assert not postgres.is_running()

    version_file = postgres.pgdata / "PG_VERSION"
    initialised_at = version_file.stat().st_mtime_ns
    uri = postgres.start()  # start() is idempotent about the database too
    assert version_file.stat().st_mtime_ns == initialised_at, "second start must not re-run initdb"
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT note FROM survivor WHERE id = 1").fetchone() == ("still here",)


def test_postgres_outlives_its_handle_and_is_adopted(tmp_path: Path) -> None:
    first = EmbeddedPostgres(tmp_path / "pg")
    uri = first.start()
    pid = first.pid
    del first  # the server must not depend on the Python object

    second = EmbeddedPostgres(tmp_path / "pg")
    try:
        assert second.start() == uri
        assert second.pid == pid
        with psycopg.connect(uri) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        second.stop()
    assert pid is not None and not pid_alive(pid)


def test_postgres_recovers_after_crash(postgres: EmbeddedPostgres) -> None:
    uri = postgres.start()
    with psycopg.connect(uri) as conn:
        conn.execute("CREATE TABLE committed (id int)")
        conn.execute("INSERT INTO committed VALUES (7)")
    pid = postgres.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert wait_pid_exit(pid, 10)

    uri = postgres.start()  # stale postmaster.pid, WAL replay
    with psycopg.connect(uri) as conn:
        assert conn.execute("SELECT id FROM committed").fetchall() == [(7,)]


def test_postgres_tcp_port(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedPostgres(tmp_path / "pg", port=port) as server:
        with psycopg.connect(server.uri(tcp=True)) as conn:
            assert conn.execute("SELECT inet_server_port()").fetchone() == (port,)
    assert not server.is_running()


# -- NATS ---------------------------------------------------------------------


async def test_nats_jetstream_dedupe_and_durability(nats_server: EmbeddedNats) -> None:
    url = nats_server.start()
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="EVENTS", subjects=["events.>"], storage=StorageType.FILE))
        first = await js.publish("events.one", b"payload", headers={"Nats-Msg-Id": "evt-1"})
        second = await js.publish("events.one", b"payload", headers={"Nats-Msg-Id": "evt-1"})
        assert not first.duplicate
        assert second.duplicate
        assert (await js.stream_info("EVENTS")).state.messages == 1
    finally:
        await nc.close()

    nats_server.stop()
    assert not nats_server.is_running()
    nats_server.start()

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        assert (await js.stream_info("EVENTS")).state.messages == 1
        msg = await js.get_msg("EVENTS", seq=1)
        assert msg.data == b"payload"
    finally:
        await nc.close()


async def test_nats_data_survives_kill(nats_server: EmbeddedNats) -> None:
    url = nats_server.start()
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="CRASH", subjects=["crash.>"], storage=StorageType.FILE))
        await js.publish("crash.x", b"acked before the crash")
    finally:
        await nc.close()

    nats_server.kill()
    nats_server.start()
    nc = await nats.connect(url)
    try:
        msg = await nc.jetstream().get_msg("CRASH", seq=1)
        assert msg.data == b"acked before the crash"
    finally:
        await nc.close()


def test_nats_reports_port_in_use(tmp_path: Path, nats_server: EmbeddedNats) -> None:
    nats_server.start()
    clash = EmbeddedNats(tmp_path / "other", port=nats_server.port, monitor_port=free_port())
    with pytest.raises(RuntimeError, match="already in use"):
        clash.start()


# -- processes ----------------------------------------------------------------


def test_service_process_health_and_stop(tmp_path: Path) -> None:
    service = http_server(tmp_path)
    service.start()
    try:
        service.wait_healthy(timeout=15)
        assert service.is_running()
        assert service.health_url is not None
        with urllib.request.urlopen(service.health_url, timeout=5) as resp:
            assert resp.status == 200
        peak = service.peak_rss_kb()
        assert peak is not None and peak > 0
    finally:
        service.stop(timeout=5)
    assert not service.is_running()
    assert service.pid is not None and not pid_alive(service.pid)
    assert service.peak_rss_kb() is not None  # remembered after exit


def test_service_process_that_dies_fails_fast_with_log(tmp_path: Path) -> None:
    service = ServiceProcess(
        name="doomed",
        argv=[sys.executable, "-c", "import sys; print('boom: bad config', flush=True); sys.exit(3)"],
        env={},
        log_path=tmp_path / "doomed.log",
        health_url=f"http://127.0.0.1:{free_port()}/health",
    )
    service.start()
    with pytest.raises(RuntimeError, match="boom: bad config"):
        service.wait_healthy(timeout=15)
    assert service.returncode == 3
    service.stop()


def test_service_process_kill(tmp_path: Path) -> None:
    service = http_server(tmp_path)
    service.start()
    service.wait_healthy(timeout=15)
    service.kill()
    assert not service.is_running()
    assert service.returncode == -9


def test_supervisor_starts_in_order_and_stops_all(tmp_path: Path) -> None:
    services = [http_server(tmp_path, "first"), http_server(tmp_path, "second")]
    with Supervisor(services) as supervisor:
        assert all(service.is_running() for service in supervisor)
        assert supervisor["second"] is services[1]
    assert not any(service.is_running() for service in services)
