"""Litestar app speaking the GitHub REST endpoints that open a pull request the git-data way,
with GitHub's JSON shapes, status codes and error bodies (state: `libs.githubserver.state`).

Repository routes (every one needs `Authorization: token <token>` or `Bearer <token>`: the
configured token, a user's or an installation's; a wrong token is a 401 "Bad credentials", a
missing one a 401 "Requires authentication"):

- `GET /repos/{owner}/{repo}`, `GET branches/{branch}` (its head commit and that commit's tree)
- `GET git/ref/{ref}`, `GET git/refs[/{ref}]`, `GET git/matching-refs/{ref}`, `POST git/refs`,
  `PATCH git/refs/{ref}` (`force` to move a branch anywhere, else fast-forward only)
- `POST git/blobs`, `GET git/blobs/{sha}`, `POST git/trees` (`base_tree`; entries with `content`
  or `sha`, `"sha": null` deletes a path), `GET git/trees/{sha}[?recursive=1]`,
  `POST git/commits`, `GET git/commits/{sha}`
- `GET pulls?state=&head=owner:branch&base=`, `POST pulls`, `GET pulls/{number}`
- `GET contents/{path}?ref=` (a file, base64 as GitHub sends it, or a directory's entries)

Pages (no token): `GET /{owner}/{repo}/pull/{number}` (a pull request's `html_url`, as text) and
`GET /{owner}/{repo}/raw/{ref}/{path}` (a file's `download_url`).

The App, OAuth and the signed-in user (`apps`, `oauth`): `GET /app`, `GET /app/installations[/{id}]`,
`POST /app/installations/{id}/access_tokens` with the App's JWT; `GET /installation/repositories`
with an installation's token; `GET /login/oauth/authorize`, `POST /login/oauth/access_token`;
`GET /user`, `/user/orgs`, `/user/installations` with a user's token. Issues (`issues`):
`GET issues/{number}`, `GET` and `POST issues/{number}/comments`, `GET collaborators/{user}/permission`.
`GET /rate_limit` and `GET /user/installations/{id}/repositories` (`ratelimit`). Every GET
answered with a token carries an ETag and answers `If-None-Match` with a 304 that costs no rate
limit; every other call counts against its token's (`conditional`, `X-RateLimit-*` headers).
An installation's token reaches only the installation's repositories (others are not found).

Control routes (no token; more in `control`): `POST /_repos` `{"owner", "repo", "branch", "files"}` creates (or
replaces) a repository with those files in one commit on that branch; `GET /_state` lists the
repositories and every pull request with the files of its head; `DELETE /_state` forgets all;
`POST /_rate_limit` `{"seconds"}` refuses every GitHub route for that long as GitHub does when
the rate limit is used up (403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset`).
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from litestar import Litestar, Request, Response, Router, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, NotFoundException
from litestar.params import FromPath, FromQuery, QueryParameter

from libs.githubserver import apps, bodies, control, issues, oauth, ratelimit
from libs.githubserver.conditional import RateCounter, conditional
from libs.githubserver.credentials import IDENTITY, Identity, require_token
from libs.githubserver.http import DOCS, Paging, docs, json, paging, read, renderer
from libs.githubserver.render import pull_page
from libs.githubserver.state import GitHubError, Hosting, Repository, not_found

# Agent tasks may carry whole files; GitHub accepts blobs up to 100 MB.
MAX_BODY_BYTES = 100 * 1024 * 1024
REPO = "/repos/{owner:str}/{repo:str}"


def error_body(request: Request[Any, Any, Any], status: int, message: str, errors: Any = None) -> Response[Any]:
    handler = request.scope.get("route_handler")
    documentation = handler.opt.get("docs", DOCS) if handler is not None else DOCS
    body = bodies.ErrorBody(message=message, errors=errors, documentation_url=documentation, status=str(status))
    return json(body, status)


def github_error(request: Request[Any, Any, Any], exc: GitHubError) -> Response[Any]:
    response = error_body(request, exc.status, exc.message, exc.errors)
    response.headers.update(exc.headers)
    return response


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    # GitHub answers an unknown route, or a method a route lacks, with a plain 404.
    if isinstance(exc, NotFoundException) or exc.status_code == 405:
        return error_body(request, 404, "Not Found")
    return error_body(request, exc.status_code, exc.detail)


# --- repositories -----------------------------------------------------------------------------


@get(REPO, opt=docs("repos/repos#get-a-repository"))
async def get_repository(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    return json(renderer(request).repository(repository, bodies.FullRepository))


# --- branches ---------------------------------------------------------------------------------


@get(f"{REPO}/branches/{{branch:path}}", opt=docs("branches/branches#get-a-branch"))
async def get_branch(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    branch: FromPath[str],
) -> Response[Any]:
    name = branch.strip("/")
    try:
        _, sha = repository.ref(f"heads/{name}")
    except GitHubError:
        raise GitHubError(404, "Branch not found") from None
    return json(renderer(request).branch_with_protection(repository, name, repository.commit(sha)))


# --- refs -------------------------------------------------------------------------------------


def ref_list(request: Request[Any, Any, Any], repository: Repository, prefix: str) -> Response[Any]:
    render = renderer(request)
    return json([render.ref(repository, name, sha) for name, sha in repository.matching_refs(prefix)])


@get(f"{REPO}/git/ref/{{ref:path}}", opt=docs("git/refs#get-a-reference"))
async def get_ref(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    ref: FromPath[str],
) -> Response[Any]:
    name, sha = repository.ref(ref.strip("/"))
    return json(renderer(request).ref(repository, name, sha))


@get(f"{REPO}/git/refs", opt=docs("git/refs#list-matching-references"))
async def list_refs(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    return ref_list(request, repository, "")


@get(f"{REPO}/git/refs/{{ref:path}}", opt=docs("git/refs#get-a-reference"))
async def get_refs(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    ref: FromPath[str],
) -> Response[Any]:
    # The older form: the ref itself when it exists, else every ref it is a prefix of.
    ref = ref.strip("/")
    if f"refs/{ref}" not in repository.refs and repository.matching_refs(ref):
        return ref_list(request, repository, ref)
    name, sha = repository.ref(ref)
    return json(renderer(request).ref(repository, name, sha))


@get(f"{REPO}/git/matching-refs/{{ref:path}}", opt=docs("git/refs#list-matching-references"))
async def matching_refs(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    ref: FromPath[str],
) -> Response[Any]:
    return ref_list(request, repository, ref.strip("/"))


@post(f"{REPO}/git/refs", opt=docs("git/refs#create-a-reference"))
async def create_ref(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    body = await read(request, bodies.NewRef)
    name, sha = repository.create_ref(body.ref, body.sha)
    return json(renderer(request).ref(repository, name, sha), 201)


@patch(f"{REPO}/git/refs/{{ref:path}}", opt=docs("git/refs#update-a-reference"))
async def update_ref(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    ref: FromPath[str],
) -> Response[Any]:
    body = await read(request, bodies.RefUpdate)
    name, sha = repository.update_ref(ref.strip("/"), body.sha, body.force)
    return json(renderer(request).ref(repository, name, sha))


# --- blobs, trees, commits --------------------------------------------------------------------


@post(f"{REPO}/git/blobs", opt=docs("git/blobs#create-a-blob"))
async def create_blob(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    body = await read(request, bodies.NewBlob)
    sha = repository.create_blob(body.content, body.encoding)
    return json(bodies.ShortBlob(url=f"{renderer(request).api(repository)}/git/blobs/{sha}", sha=sha), 201)


@get(f"{REPO}/git/blobs/{{sha:str}}", opt=docs("git/blobs#get-a-blob"))
async def get_blob(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    sha: FromPath[str],
) -> Response[Any]:
    if sha not in repository.objects.blobs:
        raise not_found()
    return json(renderer(request).blob(repository, sha))


@post(f"{REPO}/git/trees", opt=docs("git/trees#create-a-tree"))
async def create_tree(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    body = await read(request, bodies.NewTree)
    sha = repository.create_tree(body.tree, body.base_tree)
    items = list(repository.objects.trees[sha].listing)
    return json(renderer(request).tree(repository, sha, items), 201)


@get(f"{REPO}/git/trees/{{sha:str}}", opt=docs("git/trees#get-a-tree"))
async def get_tree(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    sha: FromPath[str],
    recursive: FromQuery[str | None] = None,
) -> Response[Any]:
    if sha not in repository.objects.trees:
        # GitHub also takes a commit or a branch where a tree is expected.
        try:
            sha = repository.commit(repository.resolve(sha)).tree
        except GitHubError:
            raise not_found() from None
    items = list(repository.objects.walk(sha)) if recursive else list(repository.objects.trees[sha].listing)
    return json(renderer(request).tree(repository, sha, items))


@post(f"{REPO}/git/commits", opt=docs("git/commits#create-a-commit"))
async def create_commit(request: Request[Any, Any, Any], repository: NamedDependency[Repository]) -> Response[Any]:
    body = await read(request, bodies.NewCommit)
    commit = repository.create_commit(body.message, body.tree, body.parents, body.author, body.committer)
    return json(renderer(request).commit(repository, commit), 201)


@get(f"{REPO}/git/commits/{{sha:str}}", opt=docs("git/commits#get-a-commit-object"))
async def get_commit(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    sha: FromPath[str],
) -> Response[Any]:
    return json(renderer(request).commit(repository, repository.commit(sha)))


# --- pull requests ----------------------------------------------------------------------------


@get(f"{REPO}/pulls", opt=docs("pulls/pulls#list-pull-requests"))
async def list_pulls(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    paging: NamedDependency[Paging],
    # `state` is a name Litestar reserves for the app state.
    wanted: Annotated[str, QueryParameter(name="state")] = "open",
    head: FromQuery[str | None] = None,
    base: FromQuery[str | None] = None,
) -> Response[Any]:
    if wanted not in ("open", "closed", "all"):
        raise GitHubError(422, "Validation Failed", [{"resource": "Search", "field": "state", "code": "invalid"}])
    render = renderer(request)
    pulls = paging.of(repository.list_pulls(wanted, head, base))
    return json([render.pull(repository, pull, bodies.PullSummary) for pull in pulls])


@post(f"{REPO}/pulls", opt=docs("pulls/pulls#create-a-pull-request"))
async def create_pull(
    request: Request[Any, Any, Any], repository: NamedDependency[Repository], hosting: NamedDependency[Hosting]
) -> Response[Any]:
    body = await read(request, bodies.NewPull)
    pull = repository.open_pull(
        body.title, body.head, body.base, body.body, body.draft, body.maintainer_can_modify, hosting.next_id()
    )
    return json(renderer(request).pull(repository, pull, bodies.Pull), 201)


@get(f"{REPO}/pulls/{{number:int}}", opt=docs("pulls/pulls#get-a-pull-request"))
async def get_pull(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    number: FromPath[int],
) -> Response[Any]:
    return json(renderer(request).pull(repository, repository.pull(number), bodies.Pull))


@patch(f"{REPO}/pulls/{{number:int}}", opt=docs("pulls/pulls#update-a-pull-request"))
async def update_pull(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    number: FromPath[int],
) -> Response[Any]:
    body = await read(request, bodies.PullUpdate)
    pull = repository.update_pull(number, body.title, body.body, body.state)
    return json(renderer(request).pull(repository, pull, bodies.Pull))


# --- contents ---------------------------------------------------------------------------------


def contents_at(
    request: Request[Any, Any, Any], repository: Repository, path: FromPath[str], ref: str | None
) -> Response[Any]:
    render, ref = renderer(request), ref or repository.default_branch
    found = repository.contents(ref, path)
    if isinstance(found, list):
        return json([render.content_item(repository, item, ref) for item in found])
    return json(render.content_file(repository, found, ref))


@get(f"{REPO}/contents", opt=docs("repos/contents#get-repository-content"))
async def root_contents(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    ref: FromQuery[str | None] = None,
) -> Response[Any]:
    return contents_at(request, repository, "", ref)


@get(f"{REPO}/contents/{{path:path}}", opt=docs("repos/contents#get-repository-content"))
async def get_contents(
    request: Request[Any, Any, Any],
    repository: NamedDependency[Repository],
    path: FromPath[str],
    ref: FromQuery[str | None] = None,
) -> Response[Any]:
    return contents_at(request, repository, path.strip("/"), ref)


# --- pages ------------------------------------------------------------------------------------


@get("/{owner:str}/{repo:str}/pull/{number:int}", media_type=MediaType.TEXT)
async def pull_request_page(repository: NamedDependency[Repository], number: FromPath[int]) -> str:
    return pull_page(repository, repository.pull(number))


@get("/{owner:str}/{repo:str}/raw/{rest:path}", media_type=MediaType.TEXT)
async def raw_file(repository: NamedDependency[Repository], rest: FromPath[str]) -> Response[bytes]:
    parts = rest.strip("/").split("/")
    # A branch name may hold slashes too: take the first split that names a ref and a file.
    for cut in range(1, len(parts)):
        ref, path = "/".join(parts[:cut]), "/".join(parts[cut:])
        try:
            entry = repository.files_at(ref).get(path)
        except GitHubError:
            continue
        if entry is not None:
            return Response(repository.objects.blobs[entry.sha], media_type=MediaType.TEXT)
    raise not_found()


# --- control ----------------------------------------------------------------------------------


@post("/_repos")
async def create_repository(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> Response[Any]:
    body = await read(request, bodies.NewRepository)
    repository = hosting.create_repository(body.owner, body.repo, body.branch, body.files)
    return json(renderer(request).repository_view(repository), 201)


@get("/_state")
async def show_state(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> bodies.StateView:
    render = renderer(request)
    repositories = list(hosting.repositories.values())
    pulls = [render.pull_view(repo, pull) for repo in repositories for pull in repo.pulls.values()]
    return bodies.StateView(repositories=[render.repository_view(repo) for repo in repositories], pulls=pulls)


@delete("/_state")
async def reset_state(hosting: NamedDependency[Hosting]) -> None:
    hosting.reset()


@post("/_rate_limit", status_code=204)
async def use_up_rate_limit(request: Request[Any, Any, Any], hosting: NamedDependency[Hosting]) -> None:
    """Every API call is refused as over the rate limit for the next `seconds` (GitHub's 403,
    with its `x-ratelimit-*` headers and the reset time)."""
    body = await read(request, bodies.RateLimitFor)
    hosting.rate_limited_until = time.time() + body.seconds


@get("/health")
async def health() -> bodies.Health:
    return bodies.Health(status="ok")


GITHUB_ROUTES = [
    get_repository,
    get_branch,
    get_ref,
    list_refs,
    get_refs,
    matching_refs,
    create_ref,
    update_ref,
    create_blob,
    get_blob,
    create_tree,
    get_tree,
    create_commit,
    get_commit,
    list_pulls,
    create_pull,
    get_pull,
    update_pull,
    root_contents,
    get_contents,
]


def repository_of(
    request: Request[Any, Any, Any], owner: FromPath[str], repo: FromPath[str], hosting: NamedDependency[Hosting]
) -> Repository:
    """The repository a route's `{owner}/{repo}` names; one an installation's token does not
    reach is not found, as on GitHub."""
    identity = request.scope.get("state", {}).get(IDENTITY)
    if isinstance(identity, Identity) and identity.installation and not identity.installation.covers(owner, repo):
        raise not_found()
    return hosting.repository(owner, repo)


def create_app(hosting: Hosting) -> Litestar:
    """The local GitHub server app over `hosting` (also reachable as `app.state.hosting`)."""
    counter = RateCounter()
    return Litestar(
        route_handlers=[
            Router("/", route_handlers=GITHUB_ROUTES, guards=[require_token]),
            *apps.ROUTES,
            *oauth.ROUTES,
            *issues.ROUTES,
            *ratelimit.ROUTES,
            *control.ROUTES,
            pull_request_page,
            raw_file,
            create_repository,
            show_state,
            reset_state,
            use_up_rate_limit,
            health,
        ],
        dependencies={
            "hosting": Provide(lambda: hosting, sync_to_thread=False),
            "repository": Provide(repository_of, sync_to_thread=False),
            "paging": Provide(paging, sync_to_thread=False),
        },
        exception_handlers={GitHubError: github_error, HTTPException: http_error},
        state=State({"hosting": hosting, "rate": counter}),
        # ETags, 304s and each token's rate limit, on every API call (`conditional`).
        middleware=[conditional(counter)],
        openapi_config=None,
        request_max_body_size=MAX_BODY_BYTES,
    )
