"""Process configuration from the environment (12-factor): one Struct, read once at start."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from libs.secrets import SecretsKeyError, parse_key

# The example definitions shipped beside the code (spec 004's "Research → Report" among them).
DEFAULT_ORCHESTRATIONS_DIR = str(Path(__file__).resolve().parent.parent / "orchestrations")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    service: str
    database_url: str
    nats_url: str = "nats://127.0.0.1:4222"
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    log_level: str = "INFO"
    # How long a read waits for the read models to reach a write it depends on.
    read_your_writes_timeout_s: float = 2.0
    command_timeout_s: float = 10.0
    # How long `POST .../orchestrations/{id}/run` waits for the run to complete, pause or fail.
    orchestration_wait_s: float = 600.0
    consumer_batch: int = 256
    # 3 in a JetStream cluster, so the event stream survives losing a node.
    events_stream_replicas: int = 1
    anthropic_base_url: str | None = None
    anthropic_api_key: str | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    llm_timeout_s: float = 120.0
    llm_max_retries: int = 2
    # How long an agent's question waits for a human (a workspace's config may say otherwise).
    question_expiry_s: int = 3600
    # How often a run waiting for a human also reads its question from the event store, in case
    # the bus did not bring the answer.
    question_check_s: float = 30.0
    # Model calls one agent run may make before it counts as not finishing.
    agent_max_turns: int = 24
    # Agent runs one executor process carries at once (runs waiting for a person's answer not
    # counted); it takes no more dispatches than that, and leaves the rest to other replicas.
    max_concurrent_runs: int = 64
    # The lease the executor's runs hold (spec 002): heartbeated every third of it while the
    # agent works, so an executor that dies has its runs back in the queue within it (plus a
    # second), where its dispatch's redelivery would take ACK_WAIT_S.
    lease_ttl_s: int = 30
    # How often the runtime service's sweeper looks for leases that passed.
    lease_sweep_s: float = 0.5
    # Container workers (a task's `runner: fly`): how long a machine has to claim its run before
    # it is destroyed and the run failed (a first boot pulls the image), and how often the
    # executor's reaper looks for machines whose work is over.
    worker_claim_window_s: float = 300.0
    worker_reap_s: float = 1.0
    # Self-heal runs pytest's collection on the test files an agent wrote (Python repositories).
    self_heal_collect_tests: bool = True
    # Guards the gateway's admin API (workspaces and their keys); unset, the admin API is off.
    admin_token: str | None = None
    # Where people reach the gateway (e.g. https://agents.example.com): pull requests link
    # their task there.
    public_url: str | None = None
    github_token: str | None = None
    github_api_url: str = "https://api.github.com"
    github_timeout_s: float = 30.0
    # Seals the credentials workspaces store (32 bytes; `SECRETS_KEY`, base64). Without it the
    # credential routes answer 503 and stored credentials cannot be used.
    secrets_key: bytes | None = None
    # GitHub sign-in and the GitHub App (spec 003): where people sign in (`GITHUB_WEB_URL`,
    # derived from the API's URL when unset), the App's id and private key (PEM), its OAuth
    # client id and secret, and the secret the sign-in cookie is encrypted with.
    github_web_url: str = "https://github.com"
    github_app_id: str | None = None
    github_app_private_key: str | None = None
    github_client_id: str | None = None
    github_client_secret: str | None = None
    session_secret: str | None = None
    # Checks the signatures of GitHub's webhook deliveries (`X-Hub-Signature-256`).
    github_webhook_secret: str | None = None
    # Each other service's health URL, by name (`SERVICE_HEALTH_URLS`: `name=url,...`), for the
    # gateway's `GET /api/startup/check`; `./just up` and the tests' stack set it.
    service_health_urls: dict[str, str] = msgspec.field(default_factory=dict)
    # Where the gateway forwards the stream service's and the runtime's routes, so one base URL
    # answers them all (`STREAM_URL`, `RUNTIME_URL`; `./just up`, compose and the tests' stack set
    # them). Unset (Kubernetes), the ingress routes those paths and the gateway does not serve them.
    stream_url: str | None = None
    runtime_url: str | None = None
    # The Fly Machines API (container workers, spec 003): Fly's, or the local Fly server's.
    fly_api_url: str = "https://api.machines.dev"
    # The folder of orchestration definitions (spec 004, `*.yaml`) the gateway loads at start.
    orchestrations_dir: str = DEFAULT_ORCHESTRATIONS_DIR

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL may list several servers of a cluster, comma-separated."""
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def __repr__(self) -> str:  # keys and tokens never reach a log line through a repr
        return f"Settings(service={self.service!r}, nats_url={self.nats_url!r})"


def _env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else None


def _secrets_key() -> bytes | None:
    value = _env("SECRETS_KEY")
    if value is None:
        return None
    try:
        return parse_key(value)
    except SecretsKeyError as exc:
        # A key that cannot be used stops the start: running on would refuse every credential later.
        raise SystemExit(str(exc)) from None


def web_url_for(api_url: str) -> str:
    """Where people use the GitHub whose API is `api_url`: github.com for api.github.com, the
    host of a GitHub Enterprise Server (`https://HOST/api/v3`), else the same URL (the local
    GitHub server serves both)."""
    url = api_url.rstrip("/")
    if url == "https://api.github.com":
        return "https://github.com"
    return url.removesuffix("/api/v3")


def _pem(value: str | None) -> str | None:
    # A PEM in a one-line .env file is often written with `\n` for its line breaks.
    return value.replace("\\n", "\n") if value and "\n" not in value else value


def health_urls(value: str | None) -> dict[str, str]:
    """`planner=http://planner:8080/health,executor=...` as a dict; a part without `=` is skipped."""
    pairs = (part.strip().partition("=") for part in (value or "").split(","))
    return {name.strip(): url.strip() for name, sep, url in pairs if sep and name.strip() and url.strip()}


def load_settings(service: str, default_port: int) -> Settings:
    database_url = _env("DATABASE_URL")
    if database_url is None:
        raise SystemExit("DATABASE_URL is not set: point it at the PostgreSQL event store")
    return Settings(
        service=service,
        database_url=database_url,
        nats_url=_env("NATS_URL") or "nats://127.0.0.1:4222",
        http_host=_env("HTTP_HOST") or "127.0.0.1",
        http_port=int(_env("HTTP_PORT") or default_port),
        log_level=_env("LOG_LEVEL") or "INFO",
        anthropic_base_url=_env("ANTHROPIC_BASE_URL"),
        anthropic_api_key=_env("ANTHROPIC_API_KEY"),
        openai_base_url=_env("OPENAI_BASE_URL"),
        openai_api_key=_env("OPENAI_API_KEY"),
        llm_timeout_s=float(_env("LLM_TIMEOUT_S") or 120.0),
        llm_max_retries=int(_env("LLM_MAX_RETRIES") or 2),
        agent_max_turns=int(_env("AGENT_MAX_TURNS") or 24),
        max_concurrent_runs=max(1, int(_env("MAX_CONCURRENT_RUNS") or 64)),
        lease_ttl_s=min(3600, max(1, int(_env("LEASE_TTL_S") or 30))),
        lease_sweep_s=max(0.05, float(_env("LEASE_SWEEP_S") or 0.5)),
        worker_claim_window_s=max(1.0, float(_env("WORKER_CLAIM_WINDOW_S") or 300.0)),
        worker_reap_s=max(0.05, float(_env("WORKER_REAP_S") or 1.0)),
        question_expiry_s=int(_env("QUESTION_EXPIRY_S") or 3600),
        # At least a second: the check is a read of the event store per waiting run.
        question_check_s=max(1.0, float(_env("QUESTION_CHECK_S") or 30.0)),
        self_heal_collect_tests=(_env("SELF_HEAL_COLLECT_TESTS") or "true").lower() not in ("0", "false", "no"),
        admin_token=_env("ADMIN_TOKEN"),
        public_url=_env("PUBLIC_URL"),
        github_token=_env("GITHUB_TOKEN"),
        github_api_url=_env("GITHUB_API_URL") or "https://api.github.com",
        github_web_url=(_env("GITHUB_WEB_URL") or web_url_for(_env("GITHUB_API_URL") or "https://api.github.com")),
        github_app_id=_env("GITHUB_APP_ID"),
        github_app_private_key=_pem(_env("GITHUB_APP_PRIVATE_KEY")),
        github_client_id=_env("GITHUB_CLIENT_ID"),
        github_client_secret=_env("GITHUB_CLIENT_SECRET"),
        session_secret=_env("SESSION_SECRET"),
        github_webhook_secret=_env("GITHUB_WEBHOOK_SECRET"),
        service_health_urls=health_urls(_env("SERVICE_HEALTH_URLS")),
        github_timeout_s=float(_env("GITHUB_TIMEOUT_S") or 30.0),
        secrets_key=_secrets_key(),
        stream_url=_env("STREAM_URL"),
        runtime_url=_env("RUNTIME_URL"),
        orchestrations_dir=_env("ORCHESTRATIONS_DIR") or DEFAULT_ORCHESTRATIONS_DIR,
        fly_api_url=_env("FLY_API_URL") or "https://api.machines.dev",
        events_stream_replicas=int(_env("EVENTS_STREAM_REPLICAS") or 1),
        read_your_writes_timeout_s=float(_env("READ_YOUR_WRITES_TIMEOUT_S") or 2.0),
        command_timeout_s=float(_env("COMMAND_TIMEOUT_S") or 10.0),
        orchestration_wait_s=float(_env("ORCHESTRATION_WAIT_S") or 600.0),
        consumer_batch=int(_env("CONSUMER_BATCH") or 256),
    )
