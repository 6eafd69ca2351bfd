"""What GitHub sign-in and installations need from the environment: each setting configured,
missing or invalid, and what it is for (never its value); and the 503 a route answers while
what it needs is not there."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from contracts.github import AuthDiagnostics, SettingStatus
from libs.config import Settings
from libs.web.errors import ApiError
from libs.web.session import MIN_SESSION_SECRET

SIGN_IN = ("GITHUB_CLIENT_ID", "GITHUB_CLIENT_SECRET", "SESSION_SECRET", "PUBLIC_URL")
INSTALLATIONS = ("GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY")

PURPOSES = {
    "GITHUB_CLIENT_ID": "the GitHub App's OAuth client id: GET /api/auth/github sends people to GitHub with it",
    "GITHUB_CLIENT_SECRET": "exchanges a sign-in's code for the user's GitHub token",
    "SESSION_SECRET": "encrypts and authenticates the sign-in cookie",
    "PUBLIC_URL": "where GitHub sends people back after signing in ({PUBLIC_URL}/api/auth/github/callback)",
    "GITHUB_APP_ID": "the GitHub App's id: its JWT reads an installation before it is linked",
    "GITHUB_APP_PRIVATE_KEY": "signs the GitHub App's JWT (the App's RSA private key, PEM)",
    "GITHUB_WEB_URL": "where people sign in: GitHub, or a GitHub Enterprise Server (from GITHUB_API_URL when unset)",
    "GITHUB_API_URL": "GitHub's REST API: the signed-in user, installations (GitHub Enterprise: https://HOST/api/v3)",
    "GITHUB_WEBHOOK_SECRET": "checks the signature of the App's webhook deliveries (POST /api/webhooks/github)",
}


def _private_key_problem(pem: str) -> str | None:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return "not a PEM private key"
    return None if isinstance(key, rsa.RSAPrivateKey) else "not an RSA key (GitHub Apps sign with RS256)"


def _url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    return None if parts.scheme in ("http", "https") and parts.netloc else "not an absolute http(s) URL"


CHECKS: dict[str, tuple[Callable[[Settings], str | None], Callable[[str], str | None]]] = {
    "GITHUB_CLIENT_ID": (lambda s: s.github_client_id, lambda _: None),
    "GITHUB_CLIENT_SECRET": (lambda s: s.github_client_secret, lambda _: None),
    "SESSION_SECRET": (
        lambda s: s.session_secret,
        lambda v: None if len(v) >= MIN_SESSION_SECRET else f"shorter than {MIN_SESSION_SECRET} characters",
    ),
    "PUBLIC_URL": (lambda s: s.public_url, _url_problem),
    "GITHUB_APP_ID": (lambda s: s.github_app_id, lambda v: None if v.isdigit() else "not a number"),
    "GITHUB_APP_PRIVATE_KEY": (lambda s: s.github_app_private_key, _private_key_problem),
    "GITHUB_WEB_URL": (lambda s: s.github_web_url, _url_problem),
    "GITHUB_API_URL": (lambda s: s.github_api_url, _url_problem),
    "GITHUB_WEBHOOK_SECRET": (lambda s: s.github_webhook_secret, lambda _: None),
}


def statuses(settings: Settings) -> list[SettingStatus]:
    found = []
    for name, (value_of, problem_of) in CHECKS.items():
        value = value_of(settings)
        problem = problem_of(value) if value else None
        status = "missing" if not value else "invalid" if problem else "configured"
        found.append(SettingStatus(name=name, status=status, purpose=PURPOSES[name], problem=problem))
    return found


def _not_ready(settings: Settings, names: tuple[str, ...]) -> list[SettingStatus]:
    return [s for s in statuses(settings) if s.name in names and s.status != "configured"]


def diagnose(settings: Settings) -> AuthDiagnostics:
    return AuthDiagnostics(
        sign_in="not_configured" if _not_ready(settings, (*SIGN_IN, "GITHUB_WEB_URL")) else "ready",
        installations="not_configured" if _not_ready(settings, (*INSTALLATIONS, "GITHUB_API_URL")) else "ready",
        settings=statuses(settings),
    )


def require(settings: Settings, names: tuple[str, ...], what: str) -> None:
    """A 503 naming each setting `what` lacks (missing or invalid), until an operator sets it."""
    lacking = _not_ready(settings, names)
    if lacking:
        listed = ", ".join(f"{s.name} ({s.status})" for s in lacking)
        raise ApiError(
            503, "not_configured", f"{what} is not configured on this server: {listed}; see GET /api/auth/diagnostics"
        )
