"""A machine's life on the local Fly server, in Fly's states: created, then starting and started
once its process runs (failed when it cannot be started); stopping when asked to stop, stopped
when its process has exited (with the exit in its events, `exit_event`); destroying, then
destroyed. Its restart policy is taken as `no`: a process that exits is not started again.
With `auto_destroy` a machine whose process exited is destroyed.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from libs.fly.bodies import (
    CREATED,
    DESTROYED,
    DESTROYING,
    FAILED,
    STARTED,
    STARTING,
    STOPPED,
    STOPPING,
    ExitEvent,
)
from libs.flyserver.processes import MachineProcess, machine_environment
from libs.flyserver.state import Fleet, FlyServerError, MachineRecord

log = logging.getLogger(__name__)

# Tasks begun here, kept until they end (the loop holds only weak references).
_running: set[asyncio.Task[None]] = set()

SIGNALS = {s.name: s for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGKILL, signal.SIGUSR1)}


async def launch(fleet: Fleet, machine: MachineRecord) -> None:
    """Starts the machine's process; the machine is `started`, or `failed` when the command
    cannot be run."""
    if machine.state != CREATED:
        return  # destroyed before it could start
    await machine.become(STARTING, "start", source="user")
    # What Fly sets in every machine's environment, as its runtime does.
    runtime = {"FLY_MACHINE_ID": machine.id, "FLY_APP_NAME": machine.app, "FLY_REGION": machine.region}
    env = {**machine_environment(machine.config.env), **runtime}
    try:
        machine.process = MachineProcess(
            fleet.worker_command,
            env,
            machine.workdir,
            machine.log_path,
            asyncio.get_running_loop(),
            lambda code: in_background(_exited(fleet, machine, code)),
        )
    except OSError as exc:
        with machine.log_path.open("a") as output:
            output.write(f"the machine's command {fleet.worker_command} could not be started: {exc}\n")
        log.warning("machine %s: its command could not be started: %s", machine.id, exc)
        await machine.become(FAILED, "start")
        return
    log.info("machine %s (%s): process %d started", machine.id, machine.name, machine.process.pid)
    await machine.become(STARTED, "start")


async def _exited(fleet: Fleet, machine: MachineRecord, code: int) -> None:
    exit = ExitEvent(
        exit_code=code if code >= 0 else 128 - code,
        signal=-code if code < 0 else None,
        requested_stop=machine.state in (STOPPING, DESTROYING),
        exited_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    log.info("machine %s (%s): process exited with %d", machine.id, machine.name, code)
    if machine.state in (DESTROYING, DESTROYED):
        # Killed by its destroy, which records the end.
        machine.exit = exit
        return
    await machine.become(STOPPED, "exit", exit=exit)
    if machine.config.auto_destroy:
        await destroy(machine, force=True)


async def stop(fleet: Fleet, machine: MachineRecord, signal_name: str | None, timeout: str | int | None) -> None:
    """Asks the process to end (`signal_name`, SIGINT as on Fly by default), and kills it
    after the timeout."""
    if machine.state in (DESTROYING, DESTROYED):
        raise FlyServerError(412, f"failed_precondition: machine {machine.id} is {machine.state}")
    process = machine.process
    if machine.state != STARTED or process is None or not process.running:
        return  # stopped already, or never started: nothing to stop
    sig = SIGNALS.get((signal_name or "SIGINT").upper())
    if sig is None:
        raise FlyServerError(400, f"invalid_argument: unknown signal {signal_name}")
    await machine.become(STOPPING, "stop", source="user")
    grace = _seconds(timeout, fleet.stop_grace_s)
    in_background(process.stop(sig, grace))


async def destroy(machine: MachineRecord, force: bool) -> None:
    """Destroys the machine: refused while its process runs, unless `force`, which kills it."""
    if machine.state == DESTROYED:
        raise FlyServerError(404, "machine not found")
    process = machine.process
    running = process is not None and process.running
    if running and not force:
        raise FlyServerError(412, "failed_precondition: unable to destroy machine, not currently stopped or suspended")
    await machine.become(DESTROYING, "destroy", source="user" if force else "flyd")
    if process is not None and process.running:
        await process.kill()
    shutil.rmtree(machine.workdir, ignore_errors=True)
    await machine.become(DESTROYED, "destroy")


async def wait(machine: MachineRecord, state: str, timeout_s: float) -> None:
    """Returns once the machine is in `state`; Fly's 408 when it is not in `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), machine.changed:
            await machine.changed.wait_for(lambda: machine.state == state)
    except TimeoutError:
        raise FlyServerError(
            408,
            f"deadline_exceeded: machine {machine.id} did not reach {state} in {timeout_s:g}s (it is {machine.state})",
        ) from None


async def kill_all(fleet: Fleet) -> None:
    """Every machine's process killed: the server is stopping, and leaves nothing running."""
    processes = [m.process for m in fleet.machines.values() if m.process is not None and m.process.running]
    await asyncio.gather(*(p.kill() for p in processes), return_exceptions=True)


def in_background(step: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(step)
    _running.add(task)
    task.add_done_callback(_running.discard)


def _seconds(value: str | int | None, default: float) -> float:
    """A timeout as Fly takes it: seconds, or a duration like `10s`, `500ms`, `1m`."""
    if value is None or value == "":
        return default
    text = str(value).strip()
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0)):
        if text.endswith(suffix):
            number, multiplier = text[: -len(suffix)], scale
            break
    else:
        number, multiplier = text, 1.0
    try:
        return max(0.0, float(number) * multiplier)
    except ValueError:
        raise FlyServerError(400, f"invalid_argument: timeout {value!r} is not a duration") from None
