"""Spec 003's credentials: what `/api/config/credentials`, `/api/config/provider-credentials`,
`/api/config/providers` and `/api/config/validate/anthropic` take and answer.

Write-only: a credential goes in, and a read says whether one is stored and its last four
characters, never more. Each is a secret of the Workspace (`workspace.secret_set`), sealed.
"""

from __future__ import annotations

import enum
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType


class SecretName(enum.StrEnum):
    """A workspace's secrets, by the name their events and the sealing bind them to."""

    GITHUB_TOKEN = "github_token"
    ANTHROPIC_API_KEY = "anthropic_api_key"
    OPENAI_API_KEY = "openai_api_key"
    FLY_API_TOKEN = "fly_api_token"  # container workers on Fly.io (`contracts.fly`)


PROVIDERS = ("anthropic", "openai")


def provider_secret(provider: str) -> SecretName:
    return SecretName(f"{provider}_api_key")


# Keys and tokens are printable ASCII without spaces (they travel in HTTP headers): a pasted one
# with a newline or a space is refused, not stored to fail at its first use.
CREDENTIAL_PATTERN = r"^[!-~]+$"
CREDENTIAL_WORDS = "a key or token: printable ASCII, no space or line break"
Credential = Annotated[
    str,
    msgspec.Meta(
        min_length=16,
        max_length=4096,
        pattern=CREDENTIAL_PATTERN,
        description="A key or token, 16 to 4096 printable ASCII characters without spaces. Stored sealed; "
        "never shown again.",
    ),
]


class GitHubCredentials(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """`PUT /api/config/credentials`: a token given is stored, `null` clears it, left out stays."""

    github_token: Credential | UnsetType | None = UNSET


class ProviderKey(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    api_key: Credential | None  # null clears the stored key


class ProviderCredentials(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`PUT /api/config/provider-credentials`: each provider given is set or cleared; the others stay."""

    anthropic: ProviderKey | UnsetType = UNSET
    openai: ProviderKey | UnsetType = UNSET


class CredentialStatus(msgspec.Struct, frozen=True):
    configured: bool
    last4: str | None  # the stored value's last four characters; null when none is stored


NOT_CONFIGURED = CredentialStatus(configured=False, last4=None)


class GitHubCredentialsStatus(msgspec.Struct, frozen=True, rename="camel"):
    github_token: CredentialStatus


class ProviderCredentialsStatus(msgspec.Struct, frozen=True):
    anthropic: CredentialStatus
    openai: CredentialStatus


class KeySource(enum.StrEnum):
    """Where the key a workspace's agents call a provider with comes from."""

    WORKSPACE = "workspace"  # stored for the workspace (`/api/config/provider-credentials`)
    ENVIRONMENT = "environment"  # the services' own (`ANTHROPIC_API_KEY`, `OPENAI_API_KEY`)
    NONE = "none"


class ProviderInfo(msgspec.Struct, frozen=True, rename="camel"):
    key_source: KeySource
    models: list[str]  # the models the price table knows for the provider


class ProvidersInfo(msgspec.Struct, frozen=True):
    anthropic: ProviderInfo
    openai: ProviderInfo


class KeyToCheck(msgspec.Struct, frozen=True, rename="camel", forbid_unknown_fields=True):
    """`POST /api/config/validate/anthropic`: the key to check; left out, the workspace's stored one."""

    api_key: Credential | UnsetType = UNSET


class KeyValidity(msgspec.Struct, frozen=True, omit_defaults=True):
    valid: bool
    error: str | None = None  # why not: the provider's status and message (never the key)
