"""Gateway service entry point."""

from __future__ import annotations

from libs.config import load_settings
from libs.observability.logs import setup_logging
from libs.orchestrations.definitions import DefinitionError
from libs.web.serve import serve
from services.gateway.app import create_app


def main() -> None:
    settings = load_settings("gateway", 8080)
    setup_logging("gateway", settings.log_level)
    try:
        app = create_app(settings)
    except DefinitionError as exc:
        raise SystemExit(
            f"the orchestration definitions in {settings.orchestrations_dir} are not valid:\n{exc}"
        ) from None
    serve(app, settings)
