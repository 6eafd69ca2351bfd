"""Spec 003's GitHub data bodies (`/api/github/...`, `/api/rate-limit`): what the caller's GitHub
token reads, in the product's camelCase. Only what a client shows is passed on; GitHub's own
URLs to its API are not."""

from __future__ import annotations

import msgspec


class GitHubProfile(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    login: str
    name: str | None
    avatar_url: str | None
    html_url: str


class GitHubOrg(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    login: str
    avatar_url: str | None
    description: str | None


class GitHubOrgs(msgspec.Struct, frozen=True, rename="camel"):
    orgs: list[GitHubOrg]


class GitHubInstallationView(msgspec.Struct, frozen=True, rename="camel"):
    """An installation of the App the caller's token can use, and whether it is the caller's
    workspace's (`GET /api/auth/github/installed` links one)."""

    installation_id: int
    account: str
    account_type: str
    repository_selection: str
    linked: bool


class GitHubInstallations(msgspec.Struct, frozen=True, rename="camel"):
    installations: list[GitHubInstallationView]


class GitHubRepository(msgspec.Struct, frozen=True, rename="camel"):
    id: int
    full_name: str
    owner: str
    name: str
    private: bool
    default_branch: str | None
    html_url: str
    installation_id: int


class GitHubRepositories(msgspec.Struct, frozen=True, rename="camel"):
    repositories: list[GitHubRepository]
    # True when there were more than the gateway reads for one answer (`MAX_REPOSITORY_PAGES`).
    truncated: bool


class GitHubCounts(msgspec.Struct, frozen=True, rename="camel"):
    orgs: int
    installations: int
    linked_installations: int
    repositories: int
    repositories_truncated: bool


class GitHubSummary(msgspec.Struct, frozen=True, rename="camel"):
    profile: GitHubProfile
    counts: GitHubCounts
    # The workspace's tasks by spec 000's status, every status present.
    tasks: dict[str, int]


class GitHubIssue(msgspec.Struct, frozen=True, rename="camel"):
    owner: str
    repo: str
    number: int
    title: str
    body: str | None
    state: str
    labels: list[str]
    author: str | None
    comments: int
    html_url: str


class RateLimitResource(msgspec.Struct, frozen=True, rename="camel"):
    limit: int
    remaining: int
    used: int
    reset: str  # ISO 8601, UTC: when `remaining` is back to `limit`


class RateLimit(msgspec.Struct, frozen=True, rename="camel"):
    core: RateLimitResource
    search: RateLimitResource
    graphql: RateLimitResource
