"""Run the local Fly server: `python -m libs.flyserver [--host H] [--port P]`.

From the environment (secrets stay out of the process list): `FLY_SERVER_HOST` (127.0.0.1),
`FLY_SERVER_PORT` (8902), `FLY_SERVER_APP` and `FLY_SERVER_TOKEN` (an app registered at start,
reached by that token; none when FLY_SERVER_APP is unset), `FLY_SERVER_DATA_DIR` (the machines'
working directories and logs; a new temporary folder when unset), `FLY_SERVER_WORKER_COMMAND`
(what a machine runs, split as a shell would; `orchestrator-worker` beside this Python when
unset) and `FLY_SERVER_STOP_GRACE_S` (5: how long a stopped machine's process has before SIGKILL).

Point the product at it with `FLY_API_URL=http://HOST:PORT`, and `PUT /api/config/fly` with the
app and token.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path

import uvicorn

from libs.flyserver.app import create_app
from libs.flyserver.state import Fleet

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8902

log = logging.getLogger("flyserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m libs.flyserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("FLY_SERVER_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=int(os.environ.get("FLY_SERVER_PORT") or DEFAULT_PORT))
    return parser.parse_args(argv)


def worker_command() -> list[str]:
    configured = os.environ.get("FLY_SERVER_WORKER_COMMAND")
    if configured:
        return shlex.split(configured)
    return [str(Path(sys.executable).parent / "orchestrator-worker")]


def fleet_from_environment() -> Fleet:
    data_dir = Path(os.environ.get("FLY_SERVER_DATA_DIR") or tempfile.mkdtemp(prefix="flyserver-"))
    fleet = Fleet(
        data_dir=data_dir,
        worker_command=worker_command(),
        stop_grace_s=float(os.environ.get("FLY_SERVER_STOP_GRACE_S") or 5.0),
    )
    app = os.environ.get("FLY_SERVER_APP")
    if app:
        fleet.register(app, os.environ.get("FLY_SERVER_TOKEN") or None)
    return fleet


def main(argv: list[str] | None = None) -> None:
    # uvicorn logs at warning, so our lines need their own handler to be seen.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    fleet = fleet_from_environment()
    log.info("local Fly server listening on http://%s:%d", args.host, args.port)
    log.info("machines run %s; their folders and logs are in %s", fleet.worker_command, fleet.data_dir)
    for app in fleet.apps.values():
        log.info("app %s registered", app.name)
    uvicorn.run(create_app(fleet), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
