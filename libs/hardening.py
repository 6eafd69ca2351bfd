"""Keeps a service's secrets inside its own process.

Self-heal runs code an agent wrote (pytest imports it to collect tests). Such code running as
the same user could read a service's keys from `/proc/<pid>/environ` or its memory. A process
that is not "dumpable" is closed to that: its `/proc` files belong to root and no process of
the same user may attach to it. Every service marks itself so at start. (The child that runs
agent code never runs as root either: see `libs/agent/checks.py`.)
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38


def forbid_inspection() -> bool:
    """Marks this process not dumpable; False where that is not possible (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")
    except OSError as exc:
        log.warning("could not close this process to inspection: %s", exc)
        return False
    return True


def drop_capabilities() -> None:
    """For a child about to run untrusted code (call it between fork and exec): empties the
    capability bounding set, so even as root it holds no capability after exec, and forbids
    gaining privileges (setuid binaries). Without capabilities, a non-dumpable process's /proc
    files are closed to it, whatever its user."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if os.geteuid() == 0:
        for capability in range(64):
            if libc.prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
                break  # past the last capability this kernel knows
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
