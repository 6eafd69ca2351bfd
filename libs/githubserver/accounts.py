"""Who the local GitHub server knows: users and organizations, the one GitHub App with its
installations, and the credentials it has handed out (OAuth codes, user tokens, installation
tokens, the stand-in browser sessions).

All in memory, changed only from the event loop. Operations raise `GitHubError` with the status
and message GitHub answers in the same case; the OAuth exchange returns GitHub's error codes
instead, since GitHub answers those with a 200.
"""

from __future__ import annotations

import itertools
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from libs.githubserver.common import LOGIN, GitHubError, now

# GitHub's token prefixes: a user-to-server token of an App, an installation's token.
USER_TOKEN_PREFIX, INSTALLATION_TOKEN_PREFIX = "ghu_", "ghs_"
INSTALLATION_TOKEN_TTL_S = 3600
CODE_TTL_S = 600  # GitHub's OAuth codes expire after ten minutes
# Installation ids are large on GitHub; these stay clear of the repository and pull ids.
FIRST_INSTALLATION_ID = 40_000_001
ROLES = ("admin", "maintain", "write", "triage", "read")
# `permission` is GitHub's older word for a role: maintain counts as write, triage as read.
LEGACY_PERMISSION = {"admin": "admin", "maintain": "write", "write": "write", "triage": "read", "read": "read"}
APP_PERMISSIONS = {"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"}
APP_EVENTS = ["issue_comment", "issues", "pull_request"]


def random_token(prefix: str) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(36))


def generate_private_key() -> str:
    """An RSA key in the PEM GitHub hands out for an App (PKCS#1)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return pem.decode()


@dataclass
class App:
    """The GitHub App the product is registered as: its id and key sign JWTs, its client id and
    secret run the OAuth web flow, its webhook secret signs deliveries."""

    id: int
    private_key: str
    client_id: str
    client_secret: str
    slug: str = "agent-orchestrator"
    name: str = "Agent orchestrator"
    owner: str = LOGIN
    webhook_secret: str | None = None
    # Where GitHub sends a user back after authorizing; None takes any redirect_uri.
    callback_url: str | None = None
    created_at: datetime = field(default_factory=now)

    @classmethod
    def generate(cls, id: int = 1) -> App:
        return cls(
            id=id,
            private_key=generate_private_key(),
            client_id=f"Iv1.{secrets.token_hex(8)}",
            client_secret=secrets.token_hex(20),
        )

    def public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_private_key(self.private_key.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey), "a GitHub App's key is an RSA key"
        return key.public_key()


@dataclass
class Account:
    login: str
    type: str = "User"  # or "Organization"
    name: str | None = None
    email: str | None = None
    members: set[str] = field(default_factory=set)  # an organization's, by lowercased login
    created_at: datetime = field(default_factory=now)


@dataclass
class Installation:
    id: int
    account: Account
    # "all": every repository of the account; "selected": those named (`owner/name`, lowercased).
    repository_selection: str
    repositories: list[str]
    created_at: datetime = field(default_factory=now)

    def covers(self, owner: str, name: str) -> bool:
        if self.repository_selection == "all":
            return owner.lower() == self.account.login.lower()
        return f"{owner}/{name}".lower() in self.repositories


@dataclass(frozen=True)
class Grant:
    """An OAuth code: whom it signs in, for which client, where it was sent; used once."""

    login: str
    client_id: str
    redirect_uri: str
    expires_at: float


class OAuthRefusal(Exception):
    """What GitHub answers (with a 200) to an access-token request it refuses."""

    DOCS = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors"

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error, self.description = error, description

    @property
    def uri(self) -> str:
        return f"{self.DOCS}/#{self.error.replace('_', '-')}"


class Accounts:
    def __init__(self, app: App) -> None:
        self.app = app
        self.accounts: dict[str, Account] = {}
        self.installations: dict[int, Installation] = {}
        self.codes: dict[str, Grant] = {}
        self.user_tokens: dict[str, str] = {}  # token -> lowercased login
        self.installation_tokens: dict[str, tuple[int, float]] = {}  # token -> (installation id, expiry)
        self.browser_sessions: dict[str, str] = {}  # `user_session` cookie -> lowercased login
        self._installation_ids = itertools.count(FIRST_INSTALLATION_ID)

    # --- accounts -----------------------------------------------------------------------------

    def account(self, login: str) -> Account | None:
        return self.accounts.get(login.lower())

    def add_account(self, login: str, type: str, name: str | None, email: str | None, orgs: list[str]) -> Account:
        """A user (with the organizations it belongs to, made as needed) or an organization."""
        account = self.accounts.get(login.lower())
        if account is None:
            account = self.accounts[login.lower()] = Account(login, type, name, email)
        elif account.type != type:
            raise GitHubError(422, f"{login} exists and is not of type {type}")
        account.name, account.email = name or account.name, email or account.email
        for org in orgs:
            organization = self.accounts.setdefault(org.lower(), Account(org, "Organization"))
            if organization.type != "Organization":
                raise GitHubError(422, f"{org} is a user, not an organization")
            organization.members.add(login.lower())
        return account

    def organizations_of(self, login: str) -> list[Account]:
        return sorted(
            (a for a in self.accounts.values() if a.type == "Organization" and login.lower() in a.members),
            key=lambda a: a.login.lower(),
        )

    # --- installations ------------------------------------------------------------------------

    def install(self, login: str, repositories: list[str] | None) -> Installation:
        """The App installed on the account: on all its repositories, or on those named."""
        account = self.account(login)
        if account is None:
            raise GitHubError(422, f"no account {login}: create it first (POST /_users)")
        if any(i.account is account for i in self.installations.values()):
            raise GitHubError(422, f"the App is already installed on {account.login}")
        selection = "all" if repositories is None else "selected"
        installation = Installation(
            next(self._installation_ids), account, selection, [r.lower() for r in repositories or []]
        )
        self.installations[installation.id] = installation
        return installation

    def installation(self, installation_id: int) -> Installation:
        found = self.installations.get(installation_id)
        if found is None:
            raise GitHubError(404, "Not Found")
        return found

    def installations_of(self, login: str) -> list[Installation]:
        """What `/user/installations` lists: the installations on the user's own account and on
        the organizations it belongs to."""
        mine = {login.lower(), *(org.login.lower() for org in self.organizations_of(login))}
        return [i for i in self.installations.values() if i.account.login.lower() in mine]

    def installation_for(self, owner: str, name: str) -> Installation | None:
        return next((i for i in self.installations.values() if i.covers(owner, name)), None)

    def issue_installation_token(self, installation: Installation) -> tuple[str, float]:
        token, expires_at = random_token(INSTALLATION_TOKEN_PREFIX), time.time() + INSTALLATION_TOKEN_TTL_S
        self.installation_tokens[token] = (installation.id, expires_at)
        return token, expires_at

    def installation_of_token(self, token: str) -> Installation | None:
        found = self.installation_tokens.get(token)
        if found is None or found[1] <= time.time():
            return None
        return self.installations.get(found[0])

    # --- OAuth web flow -----------------------------------------------------------------------

    def sign_in_browser(self, login: str) -> str:
        """The stand-in for a person signed in to GitHub in a browser: a `user_session` cookie."""
        if self.account(login) is None or self.accounts[login.lower()].type != "User":
            raise GitHubError(422, f"no user {login}: create it first (POST /_users)")
        cookie = secrets.token_urlsafe(24)
        self.browser_sessions[cookie] = login.lower()
        return cookie

    def grant(self, login: str, client_id: str, redirect_uri: str) -> str:
        code = secrets.token_hex(10)
        self.codes[code] = Grant(login.lower(), client_id, redirect_uri, time.time() + CODE_TTL_S)
        return code

    def exchange(self, client_id: str, client_secret: str, code: str, redirect_uri: str | None) -> str:
        """A user token for a code, which is used up whatever the outcome once its client is right."""
        app = self.app
        if client_id != app.client_id or not secrets.compare_digest(client_secret.encode(), app.client_secret.encode()):
            raise OAuthRefusal(
                "incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect."
            )
        grant = self.codes.pop(code, None)
        if grant is None or grant.client_id != client_id or grant.expires_at <= time.time():
            raise OAuthRefusal("bad_verification_code", "The code passed is incorrect or expired.")
        if redirect_uri and redirect_uri != grant.redirect_uri:
            raise OAuthRefusal(
                "redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application."
            )
        token = random_token(USER_TOKEN_PREFIX)
        self.user_tokens[token] = grant.login
        return token

    def user_of_token(self, token: str) -> Account | None:
        login = self.user_tokens.get(token)
        return self.accounts.get(login) if login else None

    def reset(self) -> None:
        self.accounts.clear()
        self.installations.clear()
        self.codes.clear()
        self.user_tokens.clear()
        self.installation_tokens.clear()
        self.browser_sessions.clear()
