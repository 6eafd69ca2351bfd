"""`just up`: the whole system on its embedded defaults, until Ctrl-C.

Data lives under `.data/` in the checkout (ignored by git), so a second `just up` finds
its tasks and events again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from libs.devstack.stack import Stack

log = logging.getLogger("up")
LOCAL_USER = "octocat"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s up %(levelname)s: %(message)s")
    data_dir = Path(os.environ.get("ORCHESTRATOR_DATA_DIR", ".data")).resolve()
    stack = Stack(data_dir)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    log.info("starting PostgreSQL, NATS JetStream, the local servers and six services (data: %s)", data_dir)
    try:
        stack.start()
    except Exception as exc:
        log.error("could not start: %s", exc)
        stack.stop()
        sys.exit(1)
    if stack.uses_local_model:
        log.info("no provider keys set: agents use the local model server at %s", stack.model_server_url)
    if stack.uses_local_github:
        log.info("no GITHUB_TOKEN set: pull requests go to the local GitHub server at %s", stack.github_url)
    log.info("logs: %s", data_dir / "logs")
    if not os.environ.get("SECRETS_KEY"):
        log.info("stored credentials are sealed with the SECRETS_KEY kept in %s", data_dir / "secrets-key")
    if not os.environ.get("GITHUB_WEBHOOK_SECRET"):
        log.info(
            "GitHub webhooks (POST %s/api/webhooks/github) are checked with the GITHUB_WEBHOOK_SECRET kept in %s",
            stack.public_url,
            data_dir / "github-webhook-secret",
        )
    created = stack.create_workspace("default", "default")
    if created:
        key = (
            f"  API key of workspace `default` (shown this once; keep it):\n"
            f"      {created['apiKey']}\n"
            f"  Use it as:  curl -H 'Authorization: Bearer <key>' {stack.gateway_url}/tasks/...\n"
        )
    else:
        key = (
            "  Workspace `default` exists; its key was shown when it was made. A new one:\n"
            "      .venv/bin/orchestrator-admin issue-key default\n"
        )
    github = f"  Local GitHub server:   {stack.github_url}/_state\n" if stack.uses_local_github else ""
    if stack.uses_local_github:
        # Someone to sign in as: the local GitHub server knows only the users it is told of.
        stack.local_github("/_users", {"login": LOCAL_USER, "name": "The Octocat"})
        github += (
            f"  Sign in with GitHub:   open {stack.github_url}/login?login={LOCAL_USER} (the local GitHub's stand-in\n"
            f"                         sign-in), then {stack.gateway_url}/api/auth/github\n"
        )
    else:
        github += f"  Sign in with GitHub:   {stack.gateway_url}/api/auth/github (settings: /api/auth/diagnostics)\n"
    print(
        f"\nAgent orchestrator is up.\n"
        f"  API, every spec:       {stack.gateway_url}   (OpenAPI: {stack.gateway_url}/schema)\n"
        f"  Events feed (SSE):     {stack.gateway_url}/api/v1/workspaces/default/orchestration/events\n"
        f"  Agent runtime (spec 002): {stack.gateway_url}/api/agent/me   (sessions: "
        f"POST {stack.gateway_url}/api/v1/workspaces/default/agent-sessions)\n"
        f"  The stream and the runtime also answer on their own ports: {stack.stream_url}, {stack.runtime_url}\n"
        f"{github}"
        f"{fly_lines(stack)}"
        f"{key}"
        f"  Admin (workspaces, keys): .venv/bin/orchestrator-admin --help\n"
        f"  Press Ctrl-C to stop.\n",
        flush=True,
    )
    stopping.wait()
    log.info("stopping")
    stack.stop()
    log.info("stopped")


def fly_lines(stack: Stack) -> str:
    """Where container workers run, and the settings that send a workspace's there."""
    if not stack.uses_local_fly:
        return "  Container workers:     on Fly.io (FLY_API_URL is set): PUT /api/config/fly with your token and app\n"
    settings = json.dumps(
        {"apiToken": stack.fly_token, "app": stack.fly_app, "region": "iad", "image": "orchestrator-worker"}
    )
    return (
        f"  Local Fly server:      {stack.fly_url}/_machines (its machines run orchestrator-worker locally)\n"
        f"  Container workers:     curl -X PUT {stack.gateway_url}/api/config/fly -H 'Authorization: Bearer <key>' \\\n"
        f"                           -H 'Content-Type: application/json' -d '{settings}'\n"
    )


if __name__ == "__main__":
    main()
