"""The Fly Machines client against the local Fly server over HTTP, whose machines really run: a
machine boots its process with its environment and nothing of the server's, stops with its exit
(asked to, or on its own), is destroyed with its process gone; Fly's refusals arrive as typed
errors that never repeat the token; a name is one machine, and a start replaces an orphan."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.devstack.processes import pid_alive
from libs.fly.bodies import guest_for
from libs.fly.client import FlyClient, FlyError, authorization
from libs.fly.machines import Machines
from libs.fly.settings import FlyAccess
from libs.flyserver.app import create_app
from libs.flyserver.state import Fleet
from tests.servers import serve_in_thread

# A machine's process: writes its environment where told, sleeps, exits with the code asked.
PROGRAM = (
    "import json, os, sys, time\n"
    "path = os.environ.get('ENV_FILE')\n"
    "if path:\n"
    "    open(path, 'w').write(json.dumps(dict(os.environ)))\n"
    "print('machine up', flush=True)\n"
    "time.sleep(float(os.environ.get('SLEEP', '60')))\n"
    "sys.exit(int(os.environ.get('EXIT', '0')))\n"
)
# Without it Python may add LC_CTYPE to its own environment, which the machine was not given.
NO_LOCALE_COERCION = {"PYTHONCOERCECLOCALE": "0"}


class LocalFly:
    def __init__(self, url: str, fleet: Fleet) -> None:
        self.url = url
        self.fleet = fleet

    def app(self, token: str | None = None) -> tuple[str, str]:
        """A new app of the server's, and the token that reaches it (through `POST /_apps`)."""
        body: dict[str, Any] = {"app": f"workers-{uuid.uuid4().hex[:8]}"}
        if token is not None:
            body["token"] = token
        answer = httpx.post(f"{self.url}/_apps", json=body, timeout=10)
        assert answer.status_code == 201, answer.text
        return answer.json()["app"], answer.json()["token"]

    def log(self, machine_id: str) -> str:
        """What the machine's process wrote."""
        return Path(self.machines()[machine_id]["log"]).read_text()

    def machines(self) -> dict[str, dict[str, Any]]:
        answer = httpx.get(f"{self.url}/_machines", timeout=10)
        assert answer.status_code == 200
        return {m["id"]: m for m in answer.json()["machines"]}


@pytest.fixture(scope="module")
def local_fly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalFly]:
    fleet = Fleet(
        data_dir=tmp_path_factory.mktemp("flyserver"), worker_command=[sys.executable, "-c", PROGRAM], stop_grace_s=5
    )
    with serve_in_thread(create_app(fleet)) as url:
        yield LocalFly(url, fleet)


@pytest.fixture
async def fly(local_fly: LocalFly) -> AsyncIterator[tuple[FlyClient, str]]:
    app, token = local_fly.app()
    async with FlyClient(local_fly.url, token) as client:
        yield client, app


def env(**values: str) -> dict[str, str]:
    return {**NO_LOCALE_COERCION, **values}


async def test_a_created_machine_runs_its_process_with_its_environment_and_nothing_of_the_servers(
    fly: tuple[FlyClient, str], local_fly: LocalFly, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, app = fly
    monkeypatch.setenv("SERVER_ONLY_SECRET", "not-for-machines")
    env_file = tmp_path / "env.json"
    given = env(ENV_FILE=str(env_file), ORCHESTRATOR_RUN_ID="run-1")

    created = await client.create_machine(
        app, name="run-1", region="ams", image="registry.fly.io/w:1", env=given, size="performance-2x"
    )
    await client.wait(app, created.id, "started", timeout_s=10)

    machine = await client.get_machine(app, created.id)
    assert (created.state, machine.state, machine.name, machine.region) == ("created", "started", "run-1", "ams")
    assert machine.config is not None and machine.config.guest == guest_for("performance-2x")
    assert machine.config.restart is not None and machine.config.restart.policy == "no"
    assert [e.status for e in machine.events] == ["started", "starting", "created"]  # newest first
    seen = await until(lambda: json.loads(env_file.read_text()) if env_file.exists() else None)
    runtime = {"FLY_MACHINE_ID": machine.id, "FLY_APP_NAME": app, "FLY_REGION": "ams"}  # as Fly sets them
    assert seen == {**given, "PATH": os.environ["PATH"], "HOME": os.environ["HOME"], **runtime}
    process = local_fly.machines()[created.id]
    assert process["running"] and pid_alive(process["pid"])
    await client.destroy(app, created.id)


async def test_stop_signals_the_process_and_the_machine_stops_with_its_exit(
    fly: tuple[FlyClient, str], local_fly: LocalFly
) -> None:
    client, app = fly
    created = await client.create_machine(app, name="run-2", region="iad", image="w", env=env(), auto_destroy=False)
    await client.wait(app, created.id, "started", timeout_s=10)
    pid = local_fly.machines()[created.id]["pid"]

    await client.stop(app, created.id, signal="SIGTERM", timeout_s=5)
    await client.wait(app, created.id, "stopped", timeout_s=10)

    machine = await client.get_machine(app, created.id)
    assert machine.state == "stopped"
    exit = machine.exit_event
    assert exit is not None and (exit.signal, exit.requested_stop) == (15, True)
    assert not pid_alive(pid)
    assert local_fly.machines()[created.id]["running"] is False


async def test_a_process_that_exits_on_its_own_stops_the_machine_with_its_exit_code(
    fly: tuple[FlyClient, str], local_fly: LocalFly
) -> None:
    client, app = fly
    created = await client.create_machine(
        app, name="run-3", region="iad", image="w", env=env(SLEEP="0", EXIT="3"), auto_destroy=False
    )

    await client.wait(app, created.id, "stopped", timeout_s=10)

    machine = await client.get_machine(app, created.id)
    exit = machine.exit_event
    assert exit is not None and (exit.exit_code, exit.requested_stop, exit.signal) == (3, False, None)
    assert local_fly.machines()[created.id]["exitCode"] == 3
    assert "machine up" in local_fly.log(created.id)


async def test_with_auto_destroy_a_machine_whose_process_exits_is_destroyed(fly: tuple[FlyClient, str]) -> None:
    client, app = fly
    created = await client.create_machine(app, name="run-4", region="iad", image="w", env=env(SLEEP="0"))

    await client.wait(app, created.id, "destroyed", timeout_s=10)

    assert [m.id for m in await client.list_machines(app)] == []
    assert [m.id for m in await client.list_machines(app, include_deleted=True)] == [created.id]


async def test_destroy_kills_a_running_process_and_the_machine_is_gone(
    fly: tuple[FlyClient, str], local_fly: LocalFly
) -> None:
    client, app = fly
    created = await client.create_machine(app, name="run-5", region="iad", image="w", env=env())
    await client.wait(app, created.id, "started", timeout_s=10)
    pid = local_fly.machines()[created.id]["pid"]
    with pytest.raises(FlyError) as refused:
        await client.destroy(app, created.id, force=False)
    assert refused.value.status == 412 and pid_alive(pid)

    await client.destroy(app, created.id, force=True)

    assert not pid_alive(pid)
    assert (await client.get_machine(app, created.id)).state == "destroyed"
    assert local_fly.machines()[created.id]["state"] == "destroyed"
    assert not (local_fly.fleet.data_dir / "machines" / created.id).exists()
    with pytest.raises(FlyError) as again:
        await client.destroy(app, created.id)
    assert again.value.not_found


async def test_a_wait_that_ends_before_the_state_is_fly_s_408(fly: tuple[FlyClient, str]) -> None:
    client, app = fly
    created = await client.create_machine(app, name="run-6", region="iad", image="w", env=env())
    await client.wait(app, created.id, "started", timeout_s=10)

    with pytest.raises(FlyError) as waited:
        await client.wait(app, created.id, "stopped", timeout_s=1)

    assert waited.value.timed_out and waited.value.retryable
    await client.destroy(app, created.id)


async def test_a_token_fly_does_not_know_is_refused_and_no_message_holds_it(local_fly: LocalFly) -> None:
    app, _ = local_fly.app()
    wrong = f"FlyV1 fm2_{uuid.uuid4().hex}{uuid.uuid4().hex},fm2_{uuid.uuid4().hex}"
    async with FlyClient(local_fly.url, wrong) as client:
        with pytest.raises(FlyError) as refused:
            await client.get_app(app)
        assert wrong.split(",")[1] not in repr(client)

    assert refused.value.unauthorized and refused.value.status == 401
    assert not refused.value.retryable
    text = f"{refused.value} {refused.value.message!r} {refused.value!r}"
    assert all(part not in text for part in (wrong, *wrong.removeprefix("FlyV1 ").split(",")))


async def test_an_app_the_token_cannot_reach_is_not_found(local_fly: LocalFly) -> None:
    _, token = local_fly.app()
    others, _ = local_fly.app()  # another organization's
    async with FlyClient(local_fly.url, token) as client:
        for app in (others, "no-such-app"):
            with pytest.raises(FlyError) as missing:
                await client.get_app(app)
            assert missing.value.not_found, app
            with pytest.raises(FlyError) as creating:
                await client.create_machine(app, name="x", region="iad", image="w", env={})
            assert creating.value.not_found, app


async def test_a_macaroon_token_goes_with_its_scheme_and_the_server_takes_it(local_fly: LocalFly) -> None:
    token = f"FlyV1 fm2_{uuid.uuid4().hex}{uuid.uuid4().hex}"
    app, _ = local_fly.app(token)
    assert authorization(token) == token
    assert authorization("fm1r_abc") == "FlyV1 fm1r_abc"
    assert authorization("plain-token") == "Bearer plain-token"

    async with FlyClient(local_fly.url, token) as client:
        found = await client.get_app(app)

    assert found.name == app and found.organization is not None


async def test_a_name_is_one_machine_and_a_start_replaces_the_orphan_of_an_earlier_one(local_fly: LocalFly) -> None:
    app, token = local_fly.app()
    access = FlyAccess(api_token=token, app=app, region="iad", image="w", size="shared-cpu-1x")  # type: ignore[arg-type]
    machines = Machines(local_fly.url)
    try:
        client = machines.client(token)
        orphan = await client.create_machine(app, name="run-7", region="iad", image="w", env=env())
        await client.wait(app, orphan.id, "started", timeout_s=10)
        with pytest.raises(FlyError) as taken:
            await client.create_machine(app, name="run-7", region="iad", image="w", env=env())
        assert taken.value.conflict
        orphan_pid = local_fly.machines()[orphan.id]["pid"]

        started = await machines.start(access, "run-7", env(), {"run_id": "run-7"})

        await client.wait(app, started, "started", timeout_s=10)
        assert started != orphan.id and not pid_alive(orphan_pid)
        live = [m for m in await client.list_machines(app) if m.name == "run-7"]
        assert [m.id for m in live] == [started]
        assert live[0].config is not None and live[0].config.metadata == {"run_id": "run-7"}
        await machines.destroy(access, app, started)
        with pytest.raises(FlyError) as gone:
            await machines.destroy(access, app, started)
        assert gone.value.not_found
    finally:
        await machines.close()


async def test_fly_not_reached_is_an_error_without_a_status_worth_retrying() -> None:
    async with FlyClient("http://127.0.0.1:9", "a-token-nobody-knows-1234") as client:
        with pytest.raises(FlyError) as unreachable:
            await client.get_app("workers")

    assert unreachable.value.status is None and unreachable.value.retryable
    assert "could not be reached" in str(unreachable.value)


async def test_a_machine_whose_command_cannot_run_fails(tmp_path: Path) -> None:
    fleet = Fleet(data_dir=tmp_path, worker_command=[str(tmp_path / "no-such-worker")])
    _, token = fleet.register("workers")
    with serve_in_thread(create_app(fleet)) as url:
        async with FlyClient(url, token) as client:
            created = await client.create_machine("workers", name="run-8", region="iad", image="w", env={})
            machine = await until_async(
                lambda: client.get_machine("workers", created.id), lambda m: m.state != "created"
            )

    assert machine.state == "failed"
    assert "could not be started" in (tmp_path / "logs" / f"{created.id}.log").read_text()


def test_stopping_the_server_kills_its_machines_processes(tmp_path: Path) -> None:
    fleet = Fleet(data_dir=tmp_path, worker_command=[sys.executable, "-c", PROGRAM])
    _, token = fleet.register("workers")

    async def boot(url: str) -> str:
        async with FlyClient(url, token) as client:
            created = await client.create_machine("workers", name="run-9", region="iad", image="w", env=env())
            await client.wait("workers", created.id, "started", timeout_s=10)
            return created.id

    with serve_in_thread(create_app(fleet)) as url:
        machine_id = asyncio.run(boot(url))
        process = fleet.machines[machine_id].process
        assert process is not None and pid_alive(process.pid)

    assert not pid_alive(process.pid)


async def until(read: Any, timeout_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := read()) is None:
        assert asyncio.get_running_loop().time() < deadline, "not there in time"
        await asyncio.sleep(0.02)
    return found


async def until_async(read: Any, done: Any, timeout_s: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done(found := await read()):
        assert asyncio.get_running_loop().time() < deadline, "not there in time"
        await asyncio.sleep(0.02)
    return found
