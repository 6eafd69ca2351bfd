"""A machine's main process, really run: the server's worker command as a local process in a
session of its own (a machine's whole process tree is signalled together, as a VM's would be),
with the machine's `config.env` as its environment plus PATH and HOME and nothing else of the
server's, in a working directory of its own, its output appended to a log file.

Its exit is watched by a thread (whatever the server's event loop) and handed to the loop. On
Linux the process is also killed should the server die without stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
# What the machine inherits from the server: enough to find programs and a home, no more.
INHERITED = ("PATH", "HOME")


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a server killed outright takes its machines along.
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def machine_environment(config_env: dict[str, str]) -> dict[str, str]:
    inherited = {name: value for name in INHERITED if (value := os.environ.get(name))}
    return {**inherited, **config_env}


class MachineProcess:
    """One started process; `on_exit(returncode)` is called in the loop when it ends
    (a negative return code: killed by that signal)."""

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        workdir: Path,
        log_path: Path,
        loop: asyncio.AbstractEventLoop,
        on_exit: Callable[[int], object],
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as output:
            self._proc = subprocess.Popen(
                argv,
                env=env,
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,  # the server starts machines from one thread
            )
        self.exited = asyncio.Event()
        self.returncode: int | None = None

        def watch() -> None:
            code = self._proc.wait()
            loop.call_soon_threadsafe(self._ended, code, on_exit)

        threading.Thread(target=watch, name=f"machine-{self._proc.pid}", daemon=True).start()

    def _ended(self, code: int, on_exit: Callable[[int], object]) -> None:
        self.returncode = code
        self.exited.set()
        on_exit(code)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        """`sig` to the process and all it started (its session's group)."""
        if self.running:
            # ProcessLookupError: it ended a moment ago; PermissionError: the group id is another's now.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, sig)

    async def stop(self, sig: signal.Signals, grace_s: float) -> None:
        """`sig`, then SIGKILL if it has not ended after `grace_s`."""
        self.signal(sig)
        try:
            await asyncio.wait_for(self.exited.wait(), grace_s)
        except TimeoutError:
            log.info("machine process %d did not stop in %ss: SIGKILL", self.pid, grace_s)
            await self.kill()

    async def kill(self) -> None:
        self.signal(signal.SIGKILL)
        await self.exited.wait()
        # The leader gone, what it left in its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)
