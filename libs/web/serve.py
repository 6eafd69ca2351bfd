"""Runs a Litestar app under uvicorn (uvloop, httptools), as every HTTP service does."""

from __future__ import annotations

import logging

import uvicorn
from litestar import Litestar

from libs.config import Settings
from libs.hardening import forbid_inspection

log = logging.getLogger(__name__)


def serve(app: Litestar, settings: Settings) -> None:
    forbid_inspection()
    log.info("%s listening on http://%s:%d", settings.service, settings.http_host, settings.http_port)
    uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.http_host,
            port=settings.http_port,
            log_level="warning",
            loop="uvloop",
            http="httptools",
            lifespan="on",
            timeout_graceful_shutdown=3,
        )
    ).run()
