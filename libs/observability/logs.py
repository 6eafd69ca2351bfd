"""Logging set-up: one line per record, service name first, secrets masked."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence

_SECRET_ENV = (
    *("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GITHUB_TOKEN", "ADMIN_TOKEN"),
    *("GITHUB_CLIENT_SECRET", "GITHUB_APP_PRIVATE_KEY", "SESSION_SECRET", "SECRETS_KEY"),
)
# GitHub's tokens: personal (ghp_), OAuth (gho_), an App's user (ghu_), installation (ghs_) and
# refresh (ghr_) tokens; and any PEM private key, whole.
_KEY_PATTERN = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|gh[pousr]_[A-Za-z0-9]{8,}|github_pat_[A-Za-z0-9_]{8,}|ak_[0-9a-f]{16}_[A-Za-z0-9_\-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----)",
    re.DOTALL,
)
REDACTED = "[redacted]"


def configured_secrets() -> list[str]:
    """The keys this process was given (too short a value would mask ordinary words); a PEM
    key's lines too, so that a part of one is masked as well as the whole."""
    values = [v for k in _SECRET_ENV if (v := os.environ.get(k)) and len(v) >= 6]
    lines = [line for v in values if "PRIVATE KEY-----" in v for line in v.splitlines() if "-----" not in line]
    return values + [line for line in lines if len(line) >= 16]


def redact(text: str, secrets: Sequence[str] | None = None) -> str:
    """`text` with the configured keys (`secrets`, read from the environment when not given)
    and anything shaped like a provider or GitHub key masked."""
    redacted = _KEY_PATTERN.sub(REDACTED, text)
    for secret in configured_secrets() if secrets is None else secrets:
        redacted = redacted.replace(secret, REDACTED)
    return redacted


class RedactSecrets(logging.Filter):
    """Masks configured keys and anything shaped like a provider key, whatever logged it."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets = configured_secrets()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def setup_logging(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpx2", "uvicorn.access", "nats"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
