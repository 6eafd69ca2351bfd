"""The whole system on one machine: PostgreSQL and NATS from their wheels, the local model
server, the local GitHub server (unless GITHUB_TOKEN is set), the local Fly server (unless
FLY_API_URL is set), and the six services as separate processes. Used by `just up`, the end-to-end
tests and the benchmark, so all three run exactly the same thing.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from libs.devstack.nats import EmbeddedNats
from libs.devstack.postgres import EmbeddedPostgres
from libs.devstack.processes import ServiceProcess, free_port
from libs.githubserver.accounts import generate_private_key
from libs.secrets import new_key

log = logging.getLogger(__name__)

SERVICES = ("stream", "gateway", "runtime", "planner", "executor", "review", "cost-ledger", "intake")
PROVIDER_KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY")
# The token the services present to the local GitHub server, which accepts only it.
LOCAL_GITHUB_TOKEN = "local-github-server"
# The local GitHub server's App: its id and OAuth client id (neither is a secret).
LOCAL_GITHUB_APP_ID = "1"
LOCAL_GITHUB_CLIENT_ID = "Iv1.localorchestrator"
# The local Fly server's app for container workers (its token is kept with the data).
LOCAL_FLY_APP = "orchestrator-workers"


@dataclass
class Ports:
    nats: int = 4222
    nats_monitor: int = 8222
    model_server: int = 8900
    services: dict[str, int] = field(
        default_factory=lambda: {
            "gateway": 8080,
            "stream": 8081,
            "runtime": 8082,
            "planner": 9101,
            "executor": 9102,
            "review": 9103,
            "cost-ledger": 9104,
            "intake": 9105,
        }
    )
    github_server: int = 8901
    fly_server: int = 8902

    @classmethod
    def free(cls) -> Ports:
        services = {name: free_port() for name in SERVICES}
        return cls(free_port(), free_port(), free_port(), services, github_server=free_port(), fly_server=free_port())


def kept_secret(data_dir: Path, name: str, make: Callable[[], str] = lambda: secrets.token_urlsafe(32)) -> str:
    """A secret kept with the data (made on first start, readable by its owner only), so a
    second `just up`, and the admin command, find the same one."""
    path = data_dir / name
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(make())
    return path.read_text().strip()


def admin_token_in(data_dir: Path) -> str:
    return kept_secret(data_dir, "admin-token")


def _script(name: str) -> str:
    return str(Path(sys.executable).parent / name)


class Stack:
    def __init__(self, data_dir: Path, ports: Ports | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.ports = ports or Ports()
        self.extra_env = extra_env or {}
        self.postgres = EmbeddedPostgres(data_dir / "postgres")
        self.nats = EmbeddedNats(data_dir / "nats", port=self.ports.nats, monitor_port=self.ports.nats_monitor)
        self.model_server: ServiceProcess | None = None
        self.github_server: ServiceProcess | None = None
        self.fly_server: ServiceProcess | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.database_url = ""
        self.uses_local_model = False
        # Decided once, at construction: the services and the server must agree.
        self.uses_local_github = not (os.environ.get("GITHUB_TOKEN") or self.extra_env.get("GITHUB_TOKEN"))
        self.admin_token = os.environ.get("ADMIN_TOKEN") or admin_token_in(data_dir)
        # What the workspaces' stored credentials are sealed with: the environment's, or one kept here.
        self.secrets_key = os.environ.get("SECRETS_KEY") or kept_secret(data_dir, "secrets-key", new_key)
        # The sign-in cookie's secret; and, for the local GitHub server, its App's key and its
        # OAuth client's secret, which the gateway is given too.
        self.session_secret = os.environ.get("SESSION_SECRET") or kept_secret(data_dir, "session-secret")
        # What GitHub's webhook deliveries are signed with: the gateway checks it, and the local
        # GitHub server signs its deliveries with it.
        self.webhook_secret = os.environ.get("GITHUB_WEBHOOK_SECRET") or kept_secret(data_dir, "github-webhook-secret")
        if self.uses_local_github:
            self.github_app_key = kept_secret(data_dir, "github-app.pem", generate_private_key)
            self.github_client_secret = kept_secret(data_dir, "github-client-secret")
        # Without FLY_API_URL, container workers run on the local Fly server, in its app, reached
        # by a token kept here (what `PUT /api/config/fly` is given).
        self.uses_local_fly = not (os.environ.get("FLY_API_URL") or self.extra_env.get("FLY_API_URL"))
        if self.uses_local_fly:
            self.fly_token = kept_secret(data_dir, "fly-api-token", lambda: f"fly-local-{secrets.token_urlsafe(32)}")
        # The key of the workspace this stack made for its caller (tests, the benchmark).
        self.api_key: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        """The Authorization header of `api_key`."""
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.services['gateway']}"

    @property
    def stream_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.services['stream']}"

    @property
    def runtime_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.services['runtime']}"

    @property
    def model_server_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.model_server}"

    @property
    def github_url(self) -> str:
        """The local GitHub server (API and pull request pages), when `uses_local_github`."""
        return f"http://127.0.0.1:{self.ports.github_server}"

    @property
    def github_token(self) -> str:
        return LOCAL_GITHUB_TOKEN

    @property
    def fly_url(self) -> str:
        """The local Fly server (the Machines API), when `uses_local_fly`."""
        return f"http://127.0.0.1:{self.ports.fly_server}"

    @property
    def fly_app(self) -> str:
        return LOCAL_FLY_APP

    @property
    def public_url(self) -> str:
        """Where people reach the gateway: `PUBLIC_URL`, else the gateway's own URL."""
        return os.environ.get("PUBLIC_URL") or self.extra_env.get("PUBLIC_URL") or self.gateway_url

    def github_app_env(self) -> dict[str, str]:
        """The local GitHub server's App, as the gateway signs in and reads installations with it."""
        return {
            "GITHUB_APP_ID": LOCAL_GITHUB_APP_ID,
            "GITHUB_APP_PRIVATE_KEY": self.github_app_key,
            "GITHUB_CLIENT_ID": LOCAL_GITHUB_CLIENT_ID,
            "GITHUB_CLIENT_SECRET": self.github_client_secret,
            "GITHUB_WEB_URL": self.github_url,
        }

    def create_workspace(self, workspace_id: str | None = None, name: str | None = None) -> dict[str, str] | None:
        """A new workspace and its first key (`workspaceId`, `keyId`, `apiKey`) through the admin
        API; None when `workspace_id` exists already (its keys were shown when it was made)."""
        body = {k: v for k, v in {"workspaceId": workspace_id, "name": name}.items() if v is not None}
        request = urllib.request.Request(
            f"{self.gateway_url}/admin/workspaces",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.admin_token}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return json.loads(response.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:
            if exc.code == 409:
                return None
            raise

    def local_github(self, path: str, body: dict[str, object]) -> dict[str, object] | None:
        """A control route of the local GitHub server (`/_users`, `/_installations`, ...): its answer."""
        request = urllib.request.Request(
            f"{self.github_url}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = response.read()
        return json.loads(answer) if answer else None  # type: ignore[no-any-return]

    def local_fly(self, path: str, body: dict[str, object] | None = None) -> Any:
        """A control route of the local Fly server: `POST /_apps` with a body, `GET /_machines`
        without one; its answer."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        method = "POST" if data else "GET"
        request = urllib.request.Request(f"{self.fly_url}{path}", data=data, headers=headers, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def start(self) -> None:
        (self.data_dir / "logs").mkdir(parents=True, exist_ok=True)
        self.database_url = self.postgres.start()
        self.nats.start()
        self.model_server = ServiceProcess(
            name="model-server",
            argv=[_script("orchestrator-model-server")],
            env={"MODEL_SERVER_PORT": str(self.ports.model_server)},
            log_path=self.data_dir / "logs" / "model-server.log",
            health_url=f"{self.model_server_url}/health",
        )
        self.model_server.start()
        if self.uses_local_github:
            self.github_server = ServiceProcess(
                name="github-server",
                argv=[sys.executable, "-m", "libs.githubserver"],
                env={
                    "GITHUB_SERVER_PORT": str(self.ports.github_server),
                    "GITHUB_SERVER_TOKEN": LOCAL_GITHUB_TOKEN,
                    "GITHUB_SERVER_APP_ID": LOCAL_GITHUB_APP_ID,
                    "GITHUB_SERVER_APP_PRIVATE_KEY": self.github_app_key,
                    "GITHUB_SERVER_CLIENT_ID": LOCAL_GITHUB_CLIENT_ID,
                    "GITHUB_SERVER_CLIENT_SECRET": self.github_client_secret,
                    "GITHUB_SERVER_WEBHOOK_SECRET": self.webhook_secret,
                    "GITHUB_SERVER_CALLBACK_URL": f"{self.public_url}/api/auth/github/callback",
                },
                log_path=self.data_dir / "logs" / "github-server.log",
                health_url=f"{self.github_url}/health",
            )
            self.github_server.start()
        if self.uses_local_fly:
            self.fly_server = self._fly_server()
            self.fly_server.start()
        self.model_server.wait_healthy()
        for server in (self.github_server, self.fly_server):
            if server:
                server.wait_healthy()
        for name in SERVICES:
            self.start_service(name)
        for name in SERVICES:
            self.services[name].wait_healthy(timeout=60)
            self._wait_ready(name)

    def _fly_server(self) -> ServiceProcess:
        env = {
            "FLY_SERVER_PORT": str(self.ports.fly_server),
            "FLY_SERVER_APP": LOCAL_FLY_APP,
            "FLY_SERVER_TOKEN": self.fly_token,
            "FLY_SERVER_DATA_DIR": str(self.data_dir / "fly-server"),
        }
        # What its machines run: the worker beside this Python, unless told otherwise.
        command = self.extra_env.get("FLY_SERVER_WORKER_COMMAND")
        if command:
            env["FLY_SERVER_WORKER_COMMAND"] = command
        return ServiceProcess(
            name="fly-server",
            argv=[sys.executable, "-m", "libs.flyserver"],
            env=env,
            log_path=self.data_dir / "logs" / "fly-server.log",
            health_url=f"{self.fly_url}/health",
        )

    def service_env(self, name: str) -> dict[str, str]:
        env = {
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats.url,
            "HTTP_PORT": str(self.ports.services[name]),
            "PYTHONUNBUFFERED": "1",
            "ADMIN_TOKEN": self.admin_token,
            "SECRETS_KEY": self.secrets_key,
        }
        # Without provider keys the agents talk to the local model server; with keys, the
        # real providers (the SDKs' default base URLs, unless one is configured).
        if not any(os.environ.get(k) for k in PROVIDER_KEYS):
            self.uses_local_model = True
            env.update(
                ANTHROPIC_BASE_URL=self.model_server_url,
                ANTHROPIC_API_KEY="local-model-server",
                OPENAI_BASE_URL=f"{self.model_server_url}/v1",
                OPENAI_API_KEY="local-model-server",
            )
        # Without a GitHub token, pull requests go to the local GitHub server; with one, to
        # GITHUB_API_URL (GitHub's API unless it is set).
        if self.uses_local_github:
            env.update(GITHUB_API_URL=self.github_url, GITHUB_TOKEN=LOCAL_GITHUB_TOKEN)
        env["PUBLIC_URL"] = self.public_url
        # The gateway checks Fly settings, the executor starts and destroys machines.
        if self.uses_local_fly and name in ("gateway", "executor"):
            env["FLY_API_URL"] = self.fly_url
        if name == "gateway":
            # Sign-in and installations are the gateway's alone: no other service gets their secrets.
            env["SESSION_SECRET"] = self.session_secret
            # What `GET /api/startup/check` asks for each other service's health.
            env["SERVICE_HEALTH_URLS"] = ",".join(
                f"{other}=http://127.0.0.1:{port}/health"
                for other, port in self.ports.services.items()
                if other != name
            )
            env["GITHUB_WEBHOOK_SECRET"] = self.webhook_secret
            # One base URL: the gateway forwards the stream's and the runtime's routes to them.
            env.update(STREAM_URL=self.stream_url, RUNTIME_URL=self.runtime_url)
            if self.uses_local_github:
                env.update(self.github_app_env())
        if name == "intake" and self.uses_local_github:
            # It acts on repositories as the App's installations: the App's id and key, no more.
            env.update(GITHUB_APP_ID=LOCAL_GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY=self.github_app_key)
        env.update(self.extra_env)
        return env

    def start_service(self, name: str, env: dict[str, str] | None = None) -> ServiceProcess:
        """Starts one service; `env` adds to (or overrides) its environment for this start only."""
        process = ServiceProcess(
            name=name,
            argv=[_script(f"orchestrator-{name}")],
            env=self.service_env(name) | (env or {}),
            log_path=self.data_dir / "logs" / f"{name}.log",
            health_url=f"http://127.0.0.1:{self.ports.services[name]}/health",
        )
        process.start()
        self.services[name] = process
        return process

    def restart_service(self, name: str, env: dict[str, str] | None = None) -> None:
        self.start_service(name, env).wait_healthy(timeout=60)
        self._wait_ready(name)

    def _wait_ready(self, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.ports.services[name]}/ready"
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not become ready in {timeout}s:\n{self.services[name].log_tail()}")

    def stop(self) -> None:
        for name in reversed(SERVICES):
            if name in self.services:
                self.services[name].stop()
        if self.github_server:
            self.github_server.stop()
        if self.fly_server:
            # It kills its machines' processes as it stops.
            self.fly_server.stop()
        if self.model_server:
            self.model_server.stop()
        self.nats.stop()
        self.postgres.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
