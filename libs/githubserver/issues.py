"""Issues, their comments, and a user's role on a repository, with any repository token
(the configured one, a user's, or an installation's on its own repositories)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from libs.githubserver import app_render
from libs.githubserver.common import GitHubError
from libs.githubserver.credentials import identity_of, require_token
from libs.githubserver.http import docs, json, read, renderer
from libs.githubserver.state import Hosting, Repository

REPO = "/repos/{owner:str}/{repo:str}"


class NewComment(msgspec.Struct, frozen=True):
    body: str


@get(f"{REPO}/issues/{{number:int}}", guards=[require_token], opt=docs("issues/issues#get-an-issue"))
async def get_issue(
    request: Request[Any, Any, Any], repository: NamedDependency[Repository], number: FromPath[int]
) -> Response[Any]:
    return json(app_render.issue(renderer(request), repository, repository.issue(number)))


@get(
    f"{REPO}/issues/{{number:int}}/comments",
    guards=[require_token],
    opt=docs("issues/comments#list-issue-comments"),
)
async def list_comments(
    request: Request[Any, Any, Any], repository: NamedDependency[Repository], number: FromPath[int]
) -> Response[Any]:
    """Every comment of the issue, oldest first (one page: the local server's issues are short)."""
    issue = repository.issue(number)
    render = renderer(request)
    return json([app_render.comment(render, repository, issue, comment) for comment in issue.comments])


@post(
    f"{REPO}/issues/{{number:int}}/comments",
    guards=[require_token],
    opt=docs("issues/comments#create-an-issue-comment"),
)
async def create_comment(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    hosting: NamedDependency[Hosting],
    number: FromPath[int],
) -> Response[Any]:
    body = await read(request, NewComment)
    identity = identity_of(request)
    kind = "Bot" if identity.kind == "installation" else "User"
    issue, comment = repository.comment(number, body.body, identity.login, kind, hosting.next_id())
    return json(app_render.comment(renderer(request), repository, issue, comment), 201)


@get(
    f"{REPO}/collaborators/{{username:str}}/permission",
    guards=[require_token],
    opt=docs("collaborators/collaborators#get-repository-permissions-for-a-user"),
)
async def get_permission(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    hosting: NamedDependency[Hosting],
    username: FromPath[str],
) -> Response[Any]:
    known = hosting.accounts.account(username)
    if known is None and repository.role_of(username) is None:
        raise GitHubError(404, "Not Found")
    return json(app_render.permission(renderer(request), repository, known.login if known else username))


ROUTES = [get_issue, list_comments, create_comment, get_permission]
