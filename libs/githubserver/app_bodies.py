"""GitHub's JSON shapes for the App, its installations and their tokens, the signed-in user, its
organizations, issues, comments and roles, and the `issue_comment` webhook; and what the control
routes take to make them (the local server's own, not GitHub's).

The answers carry every field githubkit's models require and the ones GitHub always sends.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from libs.githubserver.bodies import Repository, User

Login = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")]

# --- the App and its installations ------------------------------------------------------------


class Integration(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /app`."""

    id: int
    slug: str
    node_id: str
    client_id: str
    owner: User
    name: str
    description: str | None = None
    external_url: str
    html_url: str
    created_at: datetime
    updated_at: datetime
    permissions: dict[str, str]
    events: list[str]
    installations_count: int


class Installation(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    client_id: str
    account: User
    repository_selection: str
    access_tokens_url: str
    repositories_url: str
    html_url: str
    app_id: int
    app_slug: str
    target_id: int
    target_type: str
    permissions: dict[str, str]
    events: list[str]
    created_at: datetime
    updated_at: datetime
    single_file_name: str | None = None
    has_multiple_single_files: bool = False
    single_file_paths: list[str] = []
    suspended_by: User | None = None
    suspended_at: datetime | None = None


class InstallationToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    expires_at: datetime
    permissions: dict[str, str]
    repository_selection: str


class InstallationRepositories(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /installation/repositories`."""

    total_count: int
    repository_selection: str
    repositories: list[Repository]


class UserInstallations(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /user/installations`."""

    total_count: int
    installations: list[Installation]


# --- the signed-in user and its organizations -------------------------------------------------


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    name: str = "free"
    space: int = 976562499
    collaborators: int = 0
    private_repos: int = 10000


class PrivateUser(User, frozen=True, kw_only=True):
    """`GET /user`: the user a token belongs to, with what only that user sees."""

    name: str | None
    company: str | None = None
    blog: str = ""
    location: str | None = None
    email: str | None
    hireable: bool | None = None
    bio: str | None = None
    twitter_username: str | None = None
    public_repos: int
    public_gists: int = 0
    followers: int = 0
    following: int = 0
    created_at: datetime
    updated_at: datetime
    private_gists: int = 0
    total_private_repos: int = 0
    owned_private_repos: int = 0
    disk_usage: int = 0
    collaborators: int = 0
    two_factor_authentication: bool = True
    plan: Plan = Plan()


class OrganizationSimple(msgspec.Struct, frozen=True, kw_only=True):
    login: str
    id: int
    node_id: str
    url: str
    repos_url: str
    events_url: str
    hooks_url: str
    issues_url: str
    members_url: str
    public_members_url: str
    avatar_url: str
    description: str | None = None


# --- issues, comments, roles ------------------------------------------------------------------


class Issue(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    node_id: str
    url: str
    repository_url: str
    labels_url: str
    comments_url: str
    events_url: str
    html_url: str
    timeline_url: str
    number: int
    state: str
    state_reason: str | None = None
    title: str
    body: str | None
    user: User
    labels: list[dict[str, Any]] = []
    assignee: User | None = None
    assignees: list[User] = []
    milestone: None = None
    locked: bool = False
    active_lock_reason: str | None = None
    comments: int
    closed_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    author_association: str


class IssueComment(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    node_id: str
    url: str
    html_url: str
    issue_url: str
    body: str
    user: User
    created_at: datetime
    updated_at: datetime
    author_association: str


class Collaborator(User, frozen=True, kw_only=True):
    permissions: dict[str, bool]
    role_name: str


class CollaboratorPermission(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /repos/{owner}/{repo}/collaborators/{username}/permission`."""

    permission: str  # admin, write, read or none: GitHub's older words
    role_name: str  # admin, maintain, write, triage, read or none
    user: Collaborator


# --- webhooks ---------------------------------------------------------------------------------


class InstallationLite(msgspec.Struct, frozen=True):
    id: int
    node_id: str


class IssueCommentEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The body of an `issue_comment` delivery."""

    action: str
    issue: Issue
    comment: IssueComment
    repository: Repository
    sender: User
    installation: InstallationLite | None = None
    organization: OrganizationSimple | None = None


class Delivered(msgspec.Struct, frozen=True, kw_only=True):
    """`POST /_webhooks`: the delivery as sent, and what the receiver answered."""

    delivery: str
    event: str
    signature: str
    status: int
    response: str


# --- control routes (the local server's own) --------------------------------------------------


class NewAccount(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_users`: a user (in the organizations named, made as needed) or an organization."""

    login: Login
    type: Literal["User", "Organization"] = "User"
    name: str | None = None
    email: str | None = None
    orgs: list[Login] = []


class NewInstallation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_installations`: the App installed on an account, on all its repositories or on
    those named (`owner/name`)."""

    account: Login
    repositories: list[str] | None = None


class NewIssue(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_issues`: an issue opened by `user` (the repository is made on first use)."""

    owner: str
    repo: str
    title: str
    body: str | None = None
    user: Login = "octocat"


class NewRole(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_collaborators`: a user's role on a repository."""

    owner: str
    repo: str
    user: Login
    role: Literal["admin", "maintain", "write", "triage", "read"]


class BrowserSignIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_session`: the user signed in to this GitHub in the caller's browser (a cookie)."""

    login: Login


class NewDelivery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_webhooks`: an `issue_comment` (`created`) comment by `sender` on an issue, recorded
    on it and delivered to `url` signed with `secret` (default: the App's webhook secret).

    `delivery` sends it under a given `X-GitHub-Delivery` (a redelivery); `event` and `payload`
    send any other event or body as given instead; `signature` replaces the signature header."""

    url: str
    owner: str | None = None
    repo: str | None = None
    issue: int | None = None
    body: str | None = None
    sender: Login | None = None
    action: str = "created"
    secret: str | None = None
    delivery: str | None = None
    event: str = "issue_comment"
    payload: dict[str, Any] | None = None
    signature: str | None = None


class AppInfo(msgspec.Struct, frozen=True, kw_only=True):
    """`GET /_app`: what the App is, without its key or secrets."""

    id: int
    slug: str
    client_id: str
    callback_url: str | None
    webhook_secret_set: bool
