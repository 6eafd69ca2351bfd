"""What makes a GitHub delivery a command, as plain functions: its signature, the comment's
command (`<commandPrefix> <agentType> <description>`), and the repositories a workspace allows."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
from typing import Any

from contracts.tasks import AgentType
from contracts.workspace_settings import DEFAULT_COMMAND_PREFIX

SIGNATURE_PREFIX = "sha256="
AGENT_TYPES = tuple(t.value for t in AgentType)


def signature_valid(secret: str, body: bytes, header: str | None) -> bool:
    """GitHub's `X-Hub-Signature-256`: HMAC-SHA256 of the raw body, compared in constant time so
    a forger learns nothing from how long a refusal took."""
    if not header or not header.startswith(SIGNATURE_PREFIX):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), header.removeprefix(SIGNATURE_PREFIX).encode())


def command_of(comment: str, prefix: str) -> tuple[str, str] | str:
    """(agent type, description) of a comment that is a command; else why it is not one."""
    words = comment.strip().split(maxsplit=2)
    if not words or words[0] != prefix:
        return f"the comment is not a command: it does not start with {prefix!r}"
    if len(words) < 3 or not words[2].strip():
        return f"a command is '{prefix} <agentType> <description>'"
    if words[1] not in AGENT_TYPES:
        return f"unknown agent type {words[1]!r}: one of {', '.join(AGENT_TYPES)}"
    return words[1], words[2].strip()


def prefix_of(config: dict[str, Any]) -> str:
    prefix = config.get("commandPrefix")
    return prefix if isinstance(prefix, str) and prefix else DEFAULT_COMMAND_PREFIX


def repository_allowed(config: dict[str, Any], owner: str, repo: str) -> bool:
    """Empty `allowedRepositories`: every repository of the workspace's installations. GitHub's
    names are case-insensitive, and so is the match."""
    patterns = config.get("allowedRepositories") or []
    name = f"{owner}/{repo}".lower()
    return any(fnmatch.fnmatchcase(name, str(p).lower()) for p in patterns) if patterns else True
