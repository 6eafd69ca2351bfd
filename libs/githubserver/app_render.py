"""The App, installations, users, organizations, issues and comments in GitHub's JSON shapes,
with URLs on the server's own base (`Renderer`)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from libs.githubserver import app_bodies, bodies
from libs.githubserver.accounts import APP_EVENTS, APP_PERMISSIONS, LEGACY_PERMISSION, ROLES, Account, App, Installation
from libs.githubserver.common import LOGIN
from libs.githubserver.http import Paging
from libs.githubserver.render import Renderer, node_id, numeric_id
from libs.githubserver.state import Comment, Issue, Repository


def bot_login(app: App) -> str:
    """The account an App's installation acts as: comments made with its token show it."""
    return f"{app.slug}[bot]"


def account(render: Renderer, found: Account) -> bodies.User:
    return render.user(found.login, found.type)


def integration(render: Renderer, app: App, installations: int) -> app_bodies.Integration:
    return app_bodies.Integration(
        id=app.id,
        slug=app.slug,
        node_id=node_id("A", app.id),
        client_id=app.client_id,
        owner=render.user(app.owner),
        name=app.name,
        external_url=render.base,
        html_url=f"{render.base}/apps/{app.slug}",
        created_at=app.created_at,
        updated_at=app.created_at,
        permissions=APP_PERMISSIONS,
        events=APP_EVENTS,
        installations_count=installations,
    )


def installation(render: Renderer, app: App, found: Installation) -> app_bodies.Installation:
    owner = account(render, found.account)
    settings = "organizations" if found.account.type == "Organization" else "users"
    return app_bodies.Installation(
        id=found.id,
        client_id=app.client_id,
        account=owner,
        repository_selection=found.repository_selection,
        access_tokens_url=f"{render.base}/app/installations/{found.id}/access_tokens",
        repositories_url=f"{render.base}/installation/repositories",
        html_url=f"{render.base}/{settings}/{found.account.login}/settings/installations/{found.id}",
        app_id=app.id,
        app_slug=app.slug,
        target_id=owner.id,
        target_type=found.account.type,
        permissions=APP_PERMISSIONS,
        events=APP_EVENTS,
        created_at=found.created_at,
        updated_at=found.created_at,
    )


def installations_page(
    render: Renderer, app: App, found: Iterable[Installation], paging: Paging
) -> tuple[int, list[app_bodies.Installation]]:
    """How many installations there are, and a page of them in GitHub's order (by id): what the
    App's list and a user's list of the installations they reach both answer."""
    ordered = sorted(found, key=lambda i: i.id)
    return len(ordered), [installation(render, app, i) for i in paging.of(ordered)]


def installation_repositories(
    render: Renderer, found: Installation, repositories: Iterable[Repository], paging: Paging
) -> app_bodies.InstallationRepositories:
    """A page of the repositories an installation reaches, by full name as GitHub lists them:
    asked with the installation's token, or by a user who can reach the installation."""
    reached = sorted((r for r in repositories if found.covers(r.owner, r.name)), key=lambda r: r.full_name.lower())
    return app_bodies.InstallationRepositories(
        total_count=len(reached),
        repository_selection=found.repository_selection,
        repositories=[render.repository(r, bodies.Repository) for r in paging.of(reached)],
    )


def installation_token(token: str, expires_at: float, found: Installation) -> app_bodies.InstallationToken:
    return app_bodies.InstallationToken(
        token=token,
        expires_at=datetime.fromtimestamp(int(expires_at), UTC),
        permissions=APP_PERMISSIONS,
        repository_selection=found.repository_selection,
    )


def private_user(render: Renderer, found: Account, public_repos: int) -> app_bodies.PrivateUser:
    return app_bodies.PrivateUser(
        **{f: getattr(render.user(found.login), f) for f in bodies.User.__struct_fields__},
        name=found.name,
        email=found.email,
        public_repos=public_repos,
        created_at=found.created_at,
        updated_at=found.created_at,
    )


def the_configured_tokens_user(render: Renderer) -> app_bodies.PrivateUser:
    """`GET /user` with the configured token: the account it belongs to."""
    return private_user(render, Account(LOGIN), 0)


def organization(render: Renderer, found: Account) -> app_bodies.OrganizationSimple:
    api = f"{render.base}/orgs/{found.login}"
    id = numeric_id(found.login)
    return app_bodies.OrganizationSimple(
        login=found.login,
        id=id,
        node_id=node_id("O", id),
        url=api,
        repos_url=f"{api}/repos",
        events_url=f"{api}/events",
        hooks_url=f"{api}/hooks",
        issues_url=f"{api}/issues",
        members_url=f"{api}/members{{/member}}",
        public_members_url=f"{api}/public_members{{/member}}",
        avatar_url=f"{render.base}/{found.login}.png",
    )


def association(repo: Repository, login: str) -> str:
    """GitHub's `author_association` of a user with a repository."""
    if login.lower() == repo.owner.lower():
        return "OWNER"
    return "COLLABORATOR" if repo.role_of(login) is not None else "NONE"


def issue(render: Renderer, repo: Repository, found: Issue) -> app_bodies.Issue:
    api, html = f"{render.api(repo)}/issues/{found.number}", f"{render.html(repo)}/issues/{found.number}"
    return app_bodies.Issue(
        id=found.id,
        node_id=node_id("I", found.id),
        url=api,
        repository_url=render.api(repo),
        labels_url=f"{api}/labels{{/name}}",
        comments_url=f"{api}/comments",
        events_url=f"{api}/events",
        html_url=html,
        timeline_url=f"{api}/timeline",
        number=found.number,
        state=found.state,
        title=found.title,
        body=found.body,
        user=render.user(found.user),
        comments=len(found.comments),
        created_at=found.created_at,
        updated_at=found.updated_at,
        author_association=association(repo, found.user),
    )


def comment(render: Renderer, repo: Repository, found: Issue, written: Comment) -> app_bodies.IssueComment:
    return app_bodies.IssueComment(
        id=written.id,
        node_id=node_id("IC", written.id),
        url=f"{render.api(repo)}/issues/comments/{written.id}",
        html_url=f"{render.html(repo)}/issues/{found.number}#issuecomment-{written.id}",
        issue_url=f"{render.api(repo)}/issues/{found.number}",
        body=written.body,
        user=render.user(written.user, written.user_type),
        created_at=written.created_at,
        updated_at=written.updated_at,
        author_association="NONE" if written.user_type == "Bot" else association(repo, written.user),
    )


def permission(render: Renderer, repo: Repository, login: str) -> app_bodies.CollaboratorPermission:
    role = repo.role_of(login) or "read"  # every repository here is public: anyone may read it
    rank = ROLES.index(role)
    granted = {"admin": rank <= 0, "maintain": rank <= 1, "push": rank <= 2, "triage": rank <= 3, "pull": True}
    user = render.user(login)
    collaborator = app_bodies.Collaborator(
        **{f: getattr(user, f) for f in bodies.User.__struct_fields__}, permissions=granted, role_name=role
    )
    return app_bodies.CollaboratorPermission(permission=LEGACY_PERMISSION[role], role_name=role, user=collaborator)
