"""`orchestrator-model-server`: run the local model server.

Environment: `MODEL_SERVER_HOST` (default 127.0.0.1) and `MODEL_SERVER_PORT` (default 8900).
Point the SDKs at it with `base_url=http://HOST:PORT` (Anthropic) or `http://HOST:PORT/v1` (OpenAI).
"""

from __future__ import annotations

import logging
import os

import uvicorn

from libs.modelserver.app import create_app

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8900

log = logging.getLogger("modelserver")


def listen_address() -> tuple[str, int]:
    host = os.environ.get("MODEL_SERVER_HOST", DEFAULT_HOST)
    port = int(os.environ.get("MODEL_SERVER_PORT", str(DEFAULT_PORT)))
    return host, port


def main() -> None:
    # uvicorn logs at warning, so our one startup line needs its own handler to be seen.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    host, port = listen_address()
    log.info("local model server listening on http://%s:%d", host, port)
    uvicorn.run(create_app(), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
