"""The local GitHub server's bodies: what clients send, and GitHub's JSON shapes it answers with.

The answers carry every field githubkit's models require and the ones GitHub always sends, with
the names and nesting of the REST API (`_links`, `object`, `user`, `head.repo`, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

# --- requests ---------------------------------------------------------------------------------


class NewBlob(msgspec.Struct, frozen=True):
    content: str
    encoding: str = "utf-8"


class NewTreeEntry(msgspec.Struct, frozen=True):
    path: str
    mode: str = "100644"
    type: str = "blob"
    # Absent and null differ: `"sha": null` deletes the path.
    sha: str | msgspec.UnsetType | None = msgspec.UNSET
    content: str | msgspec.UnsetType = msgspec.UNSET


class NewTree(msgspec.Struct, frozen=True):
    tree: list[NewTreeEntry]
    base_tree: str | None = None


class NewSignature(msgspec.Struct, frozen=True):
    name: str
    email: str
    date: datetime | None = None


class NewCommit(msgspec.Struct, frozen=True):
    message: str
    tree: str
    parents: list[str] = []
    author: NewSignature | None = None
    committer: NewSignature | None = None


class NewRef(msgspec.Struct, frozen=True):
    ref: str
    sha: str


class RefUpdate(msgspec.Struct, frozen=True):
    sha: str
    force: bool = False


class NewPull(msgspec.Struct, frozen=True):
    head: str
    base: str
    title: str | None = None
    body: str | None = None
    draft: bool = False
    maintainer_can_modify: bool = True


class PullUpdate(msgspec.Struct, frozen=True):
    """`PATCH /pulls/{number}`: only the fields given change."""

    title: str | None = None
    body: str | None = None
    state: str | None = None


class RateLimitFor(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_rate_limit`: every API call refused as over the rate limit for `seconds`."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)]


class NewRepository(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /_repos`: a repository holding `files` in one commit on `branch`, its default."""

    owner: str
    repo: str
    branch: str = "main"
    files: dict[str, str] = {}


# --- errors -----------------------------------------------------------------------------------


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    message: str
    errors: list[dict[str, str]] | None = None
    documentation_url: str = "https://docs.github.com/rest"
    status: str = ""


# --- users and repositories -------------------------------------------------------------------


class User(msgspec.Struct, frozen=True, kw_only=True):
    login: str
    id: int
    node_id: str
    avatar_url: str
    gravatar_id: str = ""
    url: str
    html_url: str
    followers_url: str
    following_url: str
    gists_url: str
    starred_url: str
    subscriptions_url: str
    organizations_url: str
    repos_url: str
    events_url: str
    received_events_url: str
    type: str = "User"
    user_view_type: str = "public"
    site_admin: bool = False


class Repository(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    node_id: str
    name: str
    full_name: str
    private: bool = False
    owner: User
    html_url: str
    description: str | None = None
    fork: bool = False
    url: str
    forks_url: str
    keys_url: str
    collaborators_url: str
    teams_url: str
    hooks_url: str
    issue_events_url: str
    events_url: str
    assignees_url: str
    branches_url: str
    tags_url: str
    blobs_url: str
    git_tags_url: str
    git_refs_url: str
    trees_url: str
    statuses_url: str
    languages_url: str
    stargazers_url: str
    contributors_url: str
    subscribers_url: str
    subscription_url: str
    commits_url: str
    git_commits_url: str
    comments_url: str
    issue_comment_url: str
    contents_url: str
    compare_url: str
    merges_url: str
    archive_url: str
    downloads_url: str
    issues_url: str
    pulls_url: str
    milestones_url: str
    notifications_url: str
    labels_url: str
    releases_url: str
    deployments_url: str
    created_at: datetime
    updated_at: datetime
    pushed_at: datetime
    git_url: str
    ssh_url: str
    clone_url: str
    svn_url: str
    homepage: str | None = None
    size: int
    stargazers_count: int = 0
    watchers_count: int = 0
    language: str | None = None
    has_issues: bool = True
    has_projects: bool = True
    has_downloads: bool = True
    has_wiki: bool = True
    has_pages: bool = False
    has_discussions: bool = False
    forks_count: int = 0
    mirror_url: str | None = None
    archived: bool = False
    disabled: bool = False
    open_issues_count: int
    license: None = None
    allow_forking: bool = True
    is_template: bool = False
    web_commit_signoff_required: bool = False
    topics: list[str] = []
    visibility: str = "public"
    forks: int = 0
    open_issues: int
    watchers: int = 0
    default_branch: str


class FullRepository(Repository, frozen=True, kw_only=True):
    """`GET /repos/{owner}/{repo}` adds these to what a pull request's `head.repo` shows."""

    allow_squash_merge: bool = True
    allow_merge_commit: bool = True
    allow_rebase_merge: bool = True
    allow_auto_merge: bool = False
    delete_branch_on_merge: bool = False
    network_count: int = 0
    subscribers_count: int = 0


# --- git data ---------------------------------------------------------------------------------


class ShortBlob(msgspec.Struct, frozen=True):
    url: str
    sha: str


class Blob(msgspec.Struct, frozen=True, kw_only=True):
    content: str
    encoding: str = "base64"
    url: str
    sha: str
    size: int
    node_id: str


class TreeItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    path: str
    mode: str
    type: str
    sha: str
    size: int | None = None
    url: str


class Tree(msgspec.Struct, frozen=True, kw_only=True):
    sha: str
    url: str
    tree: list[TreeItem]
    truncated: bool = False


class Person(msgspec.Struct, frozen=True):
    name: str
    email: str
    date: datetime


class ObjectLink(msgspec.Struct, frozen=True):
    sha: str
    url: str


class ParentLink(msgspec.Struct, frozen=True):
    sha: str
    url: str
    html_url: str


class Verification(msgspec.Struct, frozen=True):
    verified: bool = False
    reason: str = "unsigned"
    signature: str | None = None
    payload: str | None = None
    verified_at: str | None = None


class Commit(msgspec.Struct, frozen=True, kw_only=True):
    sha: str
    node_id: str
    url: str
    html_url: str
    author: Person
    committer: Person
    tree: ObjectLink
    message: str
    parents: list[ParentLink]
    verification: Verification = Verification()


# --- branches ---------------------------------------------------------------------------------


class CommitDetail(msgspec.Struct, frozen=True, kw_only=True):
    """The git commit inside a repository commit (`commit.commit` of `GET branches/{branch}`)."""

    author: Person
    committer: Person
    message: str
    tree: ObjectLink
    url: str
    comment_count: int = 0
    verification: Verification = Verification()


class RepositoryCommit(msgspec.Struct, frozen=True, kw_only=True):
    sha: str
    node_id: str
    commit: CommitDetail
    url: str
    html_url: str
    comments_url: str
    # GitHub's accounts of the commit's author and committer: null when no account has the
    # email, as for every commit made here.
    author: User | None = None
    committer: User | None = None
    parents: list[ParentLink]


class BranchLinks(msgspec.Struct, frozen=True, kw_only=True):
    self_: str = msgspec.field(name="self")
    html: str


class StatusChecks(msgspec.Struct, frozen=True, kw_only=True):
    enforcement_level: str = "off"
    contexts: list[str] = []
    checks: list[str] = []


class Protection(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool = False
    required_status_checks: StatusChecks = StatusChecks()


class BranchWithProtection(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    commit: RepositoryCommit
    links: BranchLinks = msgspec.field(name="_links")
    protected: bool = False
    protection: Protection = Protection()
    protection_url: str


class RefObject(msgspec.Struct, frozen=True, kw_only=True):
    type: str = "commit"
    sha: str
    url: str


class Ref(msgspec.Struct, frozen=True, kw_only=True):
    ref: str
    node_id: str
    url: str
    object: RefObject


# --- contents ---------------------------------------------------------------------------------


class ContentLinks(msgspec.Struct, frozen=True, kw_only=True):
    self_: str = msgspec.field(name="self")
    git: str
    html: str


class ContentItem(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    size: int
    name: str
    path: str
    sha: str
    url: str
    git_url: str
    html_url: str
    download_url: str | None
    links: ContentLinks = msgspec.field(name="_links")


class ContentFile(ContentItem, frozen=True, kw_only=True):
    content: str
    encoding: str = "base64"


# --- pull requests ----------------------------------------------------------------------------


class Link(msgspec.Struct, frozen=True):
    href: str


class PullLinks(msgspec.Struct, frozen=True, kw_only=True):
    self_: Link = msgspec.field(name="self")
    html: Link
    issue: Link
    comments: Link
    review_comments: Link
    review_comment: Link
    commits: Link
    statuses: Link


class Branch(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    ref: str
    sha: str
    user: User
    repo: Repository


class PullSummary(msgspec.Struct, frozen=True, kw_only=True):
    """A pull request as `GET /pulls` lists it."""

    url: str
    id: int
    node_id: str
    html_url: str
    diff_url: str
    patch_url: str
    issue_url: str
    number: int
    state: str
    locked: bool = False
    title: str
    user: User
    body: str | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None = None
    merged_at: datetime | None = None
    merge_commit_sha: str | None = None
    assignee: User | None = None
    assignees: list[User] = []
    requested_reviewers: list[User] = []
    requested_teams: list[dict[str, str]] = []
    labels: list[dict[str, str]] = []
    milestone: None = None
    draft: bool
    commits_url: str
    review_comments_url: str
    review_comment_url: str
    comments_url: str
    statuses_url: str
    head: Branch
    base: Branch
    links: PullLinks = msgspec.field(name="_links")
    author_association: str = "OWNER"
    auto_merge: None = None
    active_lock_reason: str | None = None


class Pull(PullSummary, frozen=True, kw_only=True):
    """A pull request as `GET /pulls/{number}` and `POST /pulls` return it."""

    merged: bool = False
    mergeable: bool | None = True
    rebaseable: bool | None = True
    mergeable_state: str = "clean"
    merged_by: User | None = None
    comments: int = 0
    review_comments: int = 0
    maintainer_can_modify: bool
    commits: int
    additions: int
    deletions: int
    changed_files: int


# --- the server's own views (not GitHub's) ----------------------------------------------------


class PullView(msgspec.Struct, frozen=True, kw_only=True):
    """A pull request with what it proposes: every file of its head, and what changed."""

    owner: str
    repo: str
    number: int
    title: str
    body: str | None
    state: str
    head: str
    base: str
    head_sha: str | None
    html_url: str
    files: dict[str, str]
    changed: list[str]
    deleted: list[str]


class RepositoryView(msgspec.Struct, frozen=True, kw_only=True):
    owner: str
    repo: str
    default_branch: str
    branches: dict[str, str]


class StateView(msgspec.Struct, frozen=True):
    repositories: list[RepositoryView]
    pulls: list[PullView]


class Health(msgspec.Struct, frozen=True):
    status: str
