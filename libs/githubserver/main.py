"""Run the local GitHub server: `python -m libs.githubserver [--host H] [--port P] [--token T]`.

Each option falls back to the environment, then a default: `GITHUB_SERVER_HOST` (127.0.0.1),
`GITHUB_SERVER_PORT` (8901), `GITHUB_SERVER_TOKEN` (`local-github-server`). Point githubkit at it
with `GitHub(TokenAuthStrategy(token), base_url="http://HOST:PORT")`, or the product with
`GITHUB_API_URL=http://HOST:PORT` and `GITHUB_TOKEN=<token>`.

Its GitHub App, from the environment only (secrets stay out of the process list):
`GITHUB_SERVER_APP_ID` (1), `GITHUB_SERVER_APP_PRIVATE_KEY` (a PEM; generated at start when
unset), `GITHUB_SERVER_CLIENT_ID` and `GITHUB_SERVER_CLIENT_SECRET` (generated when unset),
`GITHUB_SERVER_WEBHOOK_SECRET` (signs deliveries; none when unset) and
`GITHUB_SERVER_CALLBACK_URL` (where sign-in sends users back; any `redirect_uri` when unset).
The product signs in with `GITHUB_WEB_URL=http://HOST:PORT` and the same App settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import uvicorn

from libs.githubserver.accounts import App
from libs.githubserver.app import create_app
from libs.githubserver.state import Hosting

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8901
DEFAULT_TOKEN = "local-github-server"

log = logging.getLogger("githubserver")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m libs.githubserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("GITHUB_SERVER_HOST") or DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=int(os.environ.get("GITHUB_SERVER_PORT") or DEFAULT_PORT))
    parser.add_argument(
        "--token",
        default=os.environ.get("GITHUB_SERVER_TOKEN") or DEFAULT_TOKEN,
        help="the only token accepted (prefer the environment: arguments show in the process list)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    # uvicorn logs at warning, so our one startup line needs its own handler to be seen.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    log.info("local GitHub server listening on http://%s:%d", args.host, args.port)
    app = app_from_environment()
    log.info("its GitHub App: id %d, client id %s", app.id, app.client_id)
    uvicorn.run(create_app(Hosting(args.token, app)), host=args.host, port=args.port, log_level="warning")


def app_from_environment() -> App:
    generated = App.generate(int(os.environ.get("GITHUB_SERVER_APP_ID") or 1))
    return dataclasses.replace(
        generated,
        private_key=os.environ.get("GITHUB_SERVER_APP_PRIVATE_KEY") or generated.private_key,
        client_id=os.environ.get("GITHUB_SERVER_CLIENT_ID") or generated.client_id,
        client_secret=os.environ.get("GITHUB_SERVER_CLIENT_SECRET") or generated.client_secret,
        webhook_secret=os.environ.get("GITHUB_SERVER_WEBHOOK_SECRET") or None,
        callback_url=os.environ.get("GITHUB_SERVER_CALLBACK_URL") or None,
    )


if __name__ == "__main__":
    main()
