"""Spec 003's GitHub data: `GET /api/github/profile`, `orgs`, `installations`, `repositories`,
`summary` and `issues/{owner}/{repo}/{number}`, and `GET /api/rate-limit`, read from GitHub with
the caller's token (`github_reads`: the sign-in's, or the workspace's stored one), each read
conditional so that a repeated one costs no rate limit.

Only the fields shown are decoded. An installation is `linked` when its `GitHubInstallation` is
the caller's workspace's (read from the event store, the source of truth, by its derived id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, get
from litestar.params import Parameter

from contracts.github_data import (
    GitHubCounts,
    GitHubInstallations,
    GitHubInstallationView,
    GitHubIssue,
    GitHubOrg,
    GitHubOrgs,
    GitHubProfile,
    GitHubRepositories,
    GitHubRepository,
    GitHubSummary,
    RateLimit,
    RateLimitResource,
)
from contracts.repos import MAX_OWNER, MAX_REPO, OWNER_PATTERN, REPO_PATTERN
from libs.domain.github_installation import GitHubInstallation, github_installation_id
from libs.readmodels.task_counts import tasks_by_status
from libs.web.auth import caller
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS
from services.gateway.github import NotFound
from services.gateway.github_reads import github_caller, reading
from services.gateway.state import gateway_state

PAGE = 100
# The most pages read for one answer (orgs, installations, and all repositories together):
# a bound on the time and the rate limit one request may spend.
MAX_PAGES = 10
MAX_NUMBER = 2**53 - 1

Read = Callable[..., Awaitable[Any]]

READS = {
    401: "No key or sign-in; or GitHub refused the signed-in user's token (sign in again).",
    409: "Called with a workspace key, and the workspace has no usable GitHub token: store one with "
    "PUT /api/config/credentials, or call with the GitHub sign-in cookie.",
    429: "GitHub's rate limit for the token is used up (the message says until when).",
    502: "GitHub could not be reached, or answered what its API does not document.",
}


class _User(msgspec.Struct, frozen=True):
    id: int
    login: str
    html_url: str
    name: str | None = None
    avatar_url: str | None = None


class _Org(msgspec.Struct, frozen=True):
    id: int
    login: str
    avatar_url: str | None = None
    description: str | None = None


class _Account(msgspec.Struct, frozen=True):
    login: str
    type: str = "User"


class _Installation(msgspec.Struct, frozen=True):
    id: int
    account: _Account
    repository_selection: str


class _Installations(msgspec.Struct, frozen=True):
    installations: list[_Installation]


class _Repository(msgspec.Struct, frozen=True):
    id: int
    name: str
    full_name: str
    owner: _Account
    private: bool
    html_url: str
    default_branch: str | None = None


class _Repositories(msgspec.Struct, frozen=True):
    repositories: list[_Repository]


class _Label(msgspec.Struct, frozen=True):
    name: str


class _Issue(msgspec.Struct, frozen=True):
    number: int
    title: str
    state: str
    comments: int
    html_url: str
    body: str | None = None
    labels: list[_Label] = []
    user: _Account | None = None


class _Rate(msgspec.Struct, frozen=True):
    limit: int
    remaining: int
    used: int
    reset: int


class _RateLimit(msgspec.Struct, frozen=True):
    resources: dict[str, _Rate]


def profile_of(user: _User) -> GitHubProfile:
    return GitHubProfile(
        id=user.id, login=user.login, name=user.name, avatar_url=user.avatar_url, html_url=user.html_url
    )


async def _profile(read: Read) -> GitHubProfile:
    return profile_of(await read("/user", _User, "read your GitHub profile"))


async def _orgs(read: Read) -> list[GitHubOrg]:
    found: list[GitHubOrg] = []
    for page in range(1, MAX_PAGES + 1):
        listed = await read("/user/orgs", list[_Org], "list your organizations", {"per_page": PAGE, "page": page})
        found += [GitHubOrg(id=o.id, login=o.login, avatar_url=o.avatar_url, description=o.description) for o in listed]
        if len(listed) < PAGE:
            break
    return found


async def _installations(read: Read) -> list[_Installation]:
    found: list[_Installation] = []
    for page in range(1, MAX_PAGES + 1):
        listed = await read(
            "/user/installations", _Installations, "list your installations", {"per_page": PAGE, "page": page}
        )
        found += listed.installations
        if len(listed.installations) < PAGE:
            break
    return found


async def _linked(request: Request[Any, Any, Any], installations: list[_Installation]) -> set[int]:
    """The installations among these linked to the caller's workspace."""
    state, workspace_id = gateway_state(request), caller(request).workspace_id

    def load() -> set[int]:
        linked = set()
        for installation in installations:
            found = state.store.load(github_installation_id(installation.id))
            if isinstance(found, GitHubInstallation) and found.workspace_id == workspace_id:
                linked.add(installation.id)
        return linked

    return await asyncio.to_thread(load)


async def _repositories(read: Read, installations: list[_Installation]) -> GitHubRepositories:
    """Each installation's repositories, GitHub's pages followed up to `MAX_PAGES` in all."""
    found: list[GitHubRepository] = []
    pages = 0
    for installation in installations:
        page = 1
        while True:
            if pages == MAX_PAGES:
                return GitHubRepositories(repositories=found, truncated=True)
            pages += 1
            listed = await read(
                f"/user/installations/{installation.id}/repositories",
                _Repositories,
                f"list the repositories of installation {installation.id}",
                {"per_page": PAGE, "page": page},
            )
            found += [
                GitHubRepository(
                    id=r.id,
                    full_name=r.full_name,
                    owner=r.owner.login,
                    name=r.name,
                    private=r.private,
                    default_branch=r.default_branch,
                    html_url=r.html_url,
                    installation_id=installation.id,
                )
                for r in listed.repositories
            ]
            if len(listed.repositories) < PAGE:
                break
            page += 1
    return GitHubRepositories(repositories=found, truncated=False)


async def _read(
    request: Request[Any, Any, Any],
    work: Callable[[Read], Awaitable[Any]],
    not_found: str = "GitHub found nothing there that your token can see",
) -> Any:
    who = await github_caller(request)
    async with reading(gateway_state(request), who) as read:
        try:
            return await work(read)
        except NotFound:
            raise ApiError(404, "Not found", not_found) from None


@get("/api/github/profile", opt={ERRORS: READS})
async def github_profile(request: Request[Any, Any, Any]) -> GitHubProfile:
    """The GitHub user the caller's token is."""
    return await _read(request, _profile)  # type: ignore[no-any-return]


@get("/api/github/orgs", opt={ERRORS: READS})
async def github_orgs(request: Request[Any, Any, Any]) -> GitHubOrgs:
    """The organizations the caller's GitHub user belongs to."""
    return GitHubOrgs(orgs=await _read(request, _orgs))


def _view(installation: _Installation, linked: set[int]) -> GitHubInstallationView:
    return GitHubInstallationView(
        installation_id=installation.id,
        account=installation.account.login,
        account_type=installation.account.type,
        repository_selection=installation.repository_selection,
        linked=installation.id in linked,
    )


TOKEN_KIND = {
    403: "GitHub lists installations only for a GitHub App user's token: sign in with GitHub and call with "
    "the cookie (a stored personal token cannot)."
}


@get("/api/github/installations", opt={ERRORS: READS | TOKEN_KIND})
async def github_installations(request: Request[Any, Any, Any]) -> GitHubInstallations:
    """The App's installations the caller's GitHub user can use, each linked to the caller's
    workspace or not (`GET /api/auth/github/installed` links one)."""
    found: list[_Installation] = await _read(request, _installations)
    linked = await _linked(request, found)
    return GitHubInstallations(installations=[_view(i, linked) for i in found])


@get("/api/github/repositories", opt={ERRORS: READS | TOKEN_KIND})
async def github_repositories(request: Request[Any, Any, Any]) -> GitHubRepositories:
    """The repositories of those installations (at most `MAX_PAGES` pages of 100: `truncated` says
    when there were more)."""

    async def work(read: Read) -> GitHubRepositories:
        return await _repositories(read, await _installations(read))

    return await _read(request, work)  # type: ignore[no-any-return]


@get("/api/github/summary", opt={ERRORS: READS | TOKEN_KIND})
async def github_summary(request: Request[Any, Any, Any]) -> GitHubSummary:
    """The profile, how many orgs, installations and repositories, and the workspace's tasks by status."""

    async def work(read: Read) -> tuple[GitHubProfile, int, list[_Installation], GitHubRepositories]:
        profile, orgs, installations = await asyncio.gather(_profile(read), _orgs(read), _installations(read))
        return profile, len(orgs), installations, await _repositories(read, installations)

    profile, orgs, installations, repositories = await _read(request, work)
    linked = await _linked(request, installations)
    tasks = await tasks_by_status(gateway_state(request).pool, caller(request).workspace_id)
    counts = GitHubCounts(
        orgs=orgs,
        installations=len(installations),
        linked_installations=len(linked),
        repositories=len(repositories.repositories),
        repositories_truncated=repositories.truncated,
    )
    return GitHubSummary(profile=profile, counts=counts, tasks=tasks)


@get(
    "/api/github/issues/{owner:str}/{repo:str}/{number:int}",
    opt={
        ERRORS: READS
        | {
            400: "An owner, repository name or issue number GitHub could not have.",
            404: "GitHub knows no such issue, or the token cannot see it.",
        }
    },
)
async def github_issue(
    request: Request[Any, Any, Any],
    owner: Annotated[str, Parameter(pattern=OWNER_PATTERN, max_length=MAX_OWNER)],
    repo: Annotated[str, Parameter(pattern=REPO_PATTERN, max_length=MAX_REPO)],
    number: Annotated[int, Parameter(ge=1, le=MAX_NUMBER)],
) -> GitHubIssue:
    """An issue: title, body, state, labels, author and how many comments."""

    async def work(read: Read) -> _Issue:
        return await read(f"/repos/{owner}/{repo}/issues/{number}", _Issue, f"read issue {owner}/{repo}#{number}")

    issue: _Issue = await _read(request, work, f"GitHub knows no issue {owner}/{repo}#{number} this token can see")
    return GitHubIssue(
        owner=owner,
        repo=repo,
        number=issue.number,
        title=issue.title,
        body=issue.body,
        state=issue.state,
        labels=[label.name for label in issue.labels],
        author=issue.user.login if issue.user else None,
        comments=issue.comments,
        html_url=issue.html_url,
    )


def _resource(rate: _Rate | None) -> RateLimitResource:
    if rate is None:  # GitHub Enterprise with rate limits off lists none
        return RateLimitResource(limit=0, remaining=0, used=0, reset=datetime.fromtimestamp(0, UTC).isoformat())
    reset = datetime.fromtimestamp(rate.reset, UTC).isoformat()
    return RateLimitResource(limit=rate.limit, remaining=rate.remaining, used=rate.used, reset=reset)


@get("/api/rate-limit", opt={ERRORS: READS})
async def rate_limit(request: Request[Any, Any, Any]) -> RateLimit:
    """The caller's GitHub rate limit (reading it costs none)."""

    async def work(read: Read) -> _RateLimit:
        return await read("/rate_limit", _RateLimit, "read your rate limit")

    found: _RateLimit = await _read(request, work)
    resources = found.resources
    return RateLimit(
        core=_resource(resources.get("core")),
        search=_resource(resources.get("search")),
        graphql=_resource(resources.get("graphql")),
    )


ROUTES = [
    github_profile,
    github_orgs,
    github_installations,
    github_repositories,
    github_summary,
    github_issue,
    rate_limit,
]
