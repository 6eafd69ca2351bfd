"""Runtime service entry point."""

from __future__ import annotations

from libs.config import load_settings
from libs.observability.logs import setup_logging
from libs.web.serve import serve
from services.runtime.app import create_app


def main() -> None:
    settings = load_settings("runtime", 8082)
    setup_logging("runtime", settings.log_level)
    serve(create_app(settings), settings)
