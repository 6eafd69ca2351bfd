"""The local GitHub server, exercised through githubkit (in-process, over ASGI): pull requests
the git-data way, GitHub's status codes and error bodies, and the control routes."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from githubkit import GitHub, TokenAuthStrategy
from githubkit.exception import RequestFailed

from libs.githubserver.app import create_app
from libs.githubserver.state import Hosting

TOKEN = "test-github-token"
BASE = "http://github.test"
# What `git hash-object` and `git write-tree` give for the same content.
HELLO_BLOB = "ce013625030ba8dba906f756967f9e9ca394464a"
HELLO_AND_APP_TREE = "42ef2a36c4848551b1c7a3f7d80caee8e12d2888"


def client(app: object, token: str = TOKEN) -> GitHub[TokenAuthStrategy]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return GitHub(
        TokenAuthStrategy(token), base_url=BASE, async_transport=transport, http_cache=False, auto_retry=False
    )


@pytest.fixture
def app() -> object:
    return create_app(Hosting(TOKEN))


@pytest.fixture
async def github(app: object) -> AsyncIterator[GitHub[TokenAuthStrategy]]:
    async with client(app) as gh:
        yield gh


@pytest.fixture
async def control(app: object) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:  # type: ignore[arg-type]
        yield http


async def branch_with(github: GitHub[TokenAuthStrategy], branch: str, tree: list[dict], base: str = "main") -> str:
    """One commit on `base` with the tree changes, and `branch` pointing at it; returns the commit."""
    head = (await github.rest.git.async_get_ref("acme", "api", f"heads/{base}")).parsed_data.object_.sha
    base_tree = (await github.rest.git.async_get_commit("acme", "api", head)).parsed_data.tree.sha
    new_tree = (await github.rest.git.async_create_tree("acme", "api", base_tree=base_tree, tree=tree)).parsed_data
    commit = await github.rest.git.async_create_commit(
        "acme", "api", message="Agent changes", tree=new_tree.sha, parents=[head]
    )
    await github.rest.git.async_create_ref("acme", "api", ref=f"refs/heads/{branch}", sha=commit.parsed_data.sha)
    return commit.parsed_data.sha


async def read_file(github: GitHub[TokenAuthStrategy], path: str, ref: str) -> str:
    found = (await github.rest.repos.async_get_content("acme", "api", path, ref=ref)).parsed_data
    return base64.b64decode(found.content).decode()  # type: ignore[union-attr]


def failure(exc: pytest.ExceptionInfo[RequestFailed]) -> tuple[int, dict]:
    return exc.value.response.status_code, exc.value.response.json()


async def test_a_repository_exists_on_first_use_with_one_commit_on_main(github: GitHub[TokenAuthStrategy]) -> None:
    repository = (await github.rest.repos.async_get("acme", "api")).parsed_data
    main = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data
    commit = (await github.rest.git.async_get_commit("acme", "api", main.object_.sha)).parsed_data

    assert (repository.full_name, repository.default_branch) == ("acme/api", "main")
    assert repository.html_url == f"{BASE}/acme/api"
    assert main.ref == "refs/heads/main"
    assert commit.message == "Initial commit"
    assert commit.parents == []
    assert await read_file(github, "README.md", "main") == "# api\n"


async def test_pull_request_the_git_data_way(github: GitHub[TokenAuthStrategy]) -> None:
    blob = (await github.rest.git.async_create_blob("acme", "api", content="hello\n")).parsed_data
    tree = [
        {"path": "b.txt", "mode": "100644", "type": "blob", "sha": blob.sha},
        {"path": "src/app.py", "mode": "100644", "type": "blob", "content": "print(1)\n"},
        {"path": "README.md", "mode": "100644", "type": "blob", "sha": None},
    ]
    commit = await branch_with(github, "agent/validation", tree)

    created = await github.rest.pulls.async_create(
        "acme", "api", title="Add validation", head="agent/validation", base="main", body="Task: t-1"
    )
    pull = created.parsed_data

    assert created.status_code == 201
    assert blob.sha == HELLO_BLOB
    assert pull.number == 1
    assert pull.html_url == f"{BASE}/acme/api/pull/1"
    assert (pull.title, pull.body, pull.state) == ("Add validation", "Task: t-1", "open")
    assert (pull.head.label, pull.head.ref, pull.head.sha) == ("acme:agent/validation", "agent/validation", commit)
    assert pull.base.ref == "main"
    assert (pull.commits, pull.changed_files, pull.additions, pull.deletions) == (1, 3, 2, 1)
    fetched = (await github.rest.pulls.async_get("acme", "api", 1)).parsed_data
    assert fetched.html_url == pull.html_url
    head_commit = (await github.rest.git.async_get_commit("acme", "api", commit)).parsed_data
    assert head_commit.tree.sha == HELLO_AND_APP_TREE
    assert await read_file(github, "src/app.py", "agent/validation") == "print(1)\n"


async def test_open_pull_requests_are_found_by_owner_and_branch_and_not_opened_twice(
    github: GitHub[TokenAuthStrategy],
) -> None:
    await branch_with(github, "agent/one", [{"path": "one.txt", "content": "1\n"}])
    await branch_with(github, "agent/two", [{"path": "two.txt", "content": "2\n"}])
    first = (
        await github.rest.pulls.async_create("acme", "api", title="One", head="agent/one", base="main")
    ).parsed_data
    await github.rest.pulls.async_create("acme", "api", title="Two", head="agent/two", base="main")

    with pytest.raises(RequestFailed) as again:
        await github.rest.pulls.async_create("acme", "api", title="One again", head="agent/one", base="main")
    found = (await github.rest.pulls.async_list("acme", "api", head="acme:agent/one", state="open")).parsed_data
    # As on GitHub, a head without its owner filters nothing.
    unfiltered = (await github.rest.pulls.async_list("acme", "api", head="agent/one")).parsed_data

    status, body = failure(again)
    assert status == 422
    assert body["message"] == "Validation Failed"
    assert body["errors"][0]["message"] == "A pull request already exists for acme:agent/one."
    assert [pull.number for pull in found] == [first.number]
    assert [pull.title for pull in unfiltered] == ["Two", "One"]


async def test_deleted_files_disappear_from_the_branch_only(github: GitHub[TokenAuthStrategy]) -> None:
    await branch_with(github, "agent/cleanup", [{"path": "README.md", "mode": "100644", "type": "blob", "sha": None}])

    with pytest.raises(RequestFailed) as gone:
        await read_file(github, "README.md", "agent/cleanup")

    assert failure(gone) == (
        404,
        {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
            "status": "404",
        },
    )
    assert await read_file(github, "README.md", "main") == "# api\n"


async def test_deleting_a_file_that_is_not_there_is_refused(github: GitHub[TokenAuthStrategy]) -> None:
    head = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha
    base_tree = (await github.rest.git.async_get_commit("acme", "api", head)).parsed_data.tree.sha

    with pytest.raises(RequestFailed) as refused:
        await github.rest.git.async_create_tree(
            "acme",
            "api",
            base_tree=base_tree,
            tree=[{"path": "missing.py", "mode": "100644", "type": "blob", "sha": None}],
        )

    status, body = failure(refused)
    assert (status, body["message"]) == (422, "GitRPC::BadObjectState")


async def test_an_existing_branch_is_refused_then_moved_only_with_force(github: GitHub[TokenAuthStrategy]) -> None:
    first = await branch_with(github, "agent/x", [{"path": "a.txt", "content": "a\n"}])
    second = await branch_with(github, "agent/y", [{"path": "b.txt", "content": "b\n"}])

    with pytest.raises(RequestFailed) as exists:
        await github.rest.git.async_create_ref("acme", "api", ref="refs/heads/agent/x", sha=second)
    with pytest.raises(RequestFailed) as not_forward:
        await github.rest.git.async_update_ref("acme", "api", "heads/agent/x", sha=second)
    moved = (await github.rest.git.async_update_ref("acme", "api", "heads/agent/x", sha=second, force=True)).parsed_data

    assert failure(exists)[1]["message"] == "Reference already exists"
    assert failure(exists)[1]["documentation_url"] == "https://docs.github.com/rest/git/refs#create-a-reference"
    assert failure(not_forward)[1]["message"] == "Update is not a fast forward"
    assert moved.object_.sha == second != first


async def test_a_branch_shows_its_head_commit_and_tree_as_github_does(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    change = [{"path": "a.txt", "mode": "100644", "type": "blob", "content": "a"}]
    commit = await branch_with(github, "agent/x-1", change)
    main = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data.object_.sha

    # githubkit's own model of the answer: the shape is GitHub's.
    branch = (await github.rest.repos.async_get_branch("acme", "api", "agent/x-1")).parsed_data
    # A repository created through the control route has only the branches made in it.
    await control.post("/_repos", json={"owner": "acme", "repo": "web", "branch": "trunk", "files": {"a": "1"}})
    with pytest.raises(RequestFailed) as no_branch:
        await github.rest.repos.async_get_branch("acme", "web", "develop")

    git_commit = (await github.rest.git.async_get_commit("acme", "api", commit)).parsed_data
    assert (branch.name, branch.commit.sha, branch.protected) == ("agent/x-1", commit, False)
    assert branch.commit.commit.tree.sha == git_commit.tree.sha
    assert branch.commit.commit.message == "Agent changes"
    assert [p.sha for p in branch.commit.parents] == [main]
    assert branch.links.html == f"{BASE}/acme/api/tree/agent/x-1"
    assert failure(no_branch) == (
        404,
        {
            "message": "Branch not found",
            "documentation_url": "https://docs.github.com/rest/branches/branches#get-a-branch",
            "status": "404",
        },
    )


async def test_a_wrong_token_is_bad_credentials(app: object) -> None:
    async with client(app, token="not-the-token") as wrong:
        with pytest.raises(RequestFailed) as refused:
            await wrong.rest.repos.async_get("acme", "api")

    status, body = failure(refused)
    assert (status, body["message"], body["status"]) == (401, "Bad credentials", "401")
    assert "not-the-token" not in refused.value.response.text


async def test_unknown_things_are_github_404s(github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient) -> None:
    with pytest.raises(RequestFailed) as no_tag:
        await github.rest.git.async_get_ref("acme", "api", "tags/v9")
    with pytest.raises(RequestFailed) as no_pull:
        await github.rest.pulls.async_get("acme", "api", 42)
    no_route = await control.get("/repos/acme/api/unknown", headers={"authorization": f"token {TOKEN}"})

    assert failure(no_tag) == (
        404,
        {
            "message": "Not Found",
            "documentation_url": "https://docs.github.com/rest/git/refs#get-a-reference",
            "status": "404",
        },
    )
    assert failure(no_pull)[0] == 404
    assert (no_route.status_code, no_route.json()["message"]) == (404, "Not Found")


async def test_any_base_branch_exists_on_first_use_but_a_created_repository_is_strict(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    develop = (await github.rest.git.async_get_ref("acme", "api", "heads/develop")).parsed_data
    release = (await github.rest.repos.async_get_branch("acme", "api", "release")).parsed_data
    main = (await github.rest.git.async_get_ref("acme", "api", "heads/main")).parsed_data
    created = await control.post(
        "/_repos", json={"owner": "acme", "repo": "web", "branch": "trunk", "files": {"app.js": "let x = 1;\n"}}
    )

    with pytest.raises(RequestFailed) as missing:
        await github.rest.git.async_get_ref("acme", "web", "heads/develop")
    web = (await github.rest.repos.async_get("acme", "web")).parsed_data

    assert develop.object_.sha == main.object_.sha == release.commit.sha
    assert created.status_code == 201
    assert failure(missing)[0] == 404
    assert web.default_branch == "trunk"
    found = (await github.rest.repos.async_get_content("acme", "web", "app.js", ref="trunk")).parsed_data
    assert base64.b64decode(found.content).decode() == "let x = 1;\n"  # type: ignore[union-attr]


async def test_state_lists_pull_requests_with_their_files_and_resets(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    await branch_with(
        github,
        "agent/docs",
        [{"path": "docs/guide.md", "content": "# Guide\n"}, {"path": "README.md", "type": "blob", "sha": None}],
    )
    await github.rest.pulls.async_create("acme", "api", title="Docs", head="agent/docs", base="main", body="Why")

    state = (await control.get("/_state")).json()
    page = await control.get("/acme/api/pull/1")
    reset = await control.delete("/_state")
    after = (await control.get("/_state")).json()

    (pull,) = state["pulls"]
    assert pull["html_url"] == f"{BASE}/acme/api/pull/1"
    assert (pull["title"], pull["body"], pull["head"], pull["base"]) == ("Docs", "Why", "agent/docs", "main")
    assert pull["files"] == {"docs/guide.md": "# Guide\n"}
    assert (pull["changed"], pull["deleted"]) == (["docs/guide.md"], ["README.md"])
    assert "acme/api #1: Docs (open)" in page.text
    assert reset.status_code == 204
    assert after == {"repositories": [], "pulls": []}


async def test_a_used_up_rate_limit_is_githubs_403_with_its_headers_until_it_resets(
    github: GitHub[TokenAuthStrategy], control: httpx.AsyncClient
) -> None:
    assert (await control.post("/_rate_limit", json={"seconds": 120})).status_code == 204

    with pytest.raises(RequestFailed) as refused:
        await github.rest.repos.async_get("acme", "api")

    response = refused.value.response
    assert response.status_code == 403
    assert response.json()["message"] == "API rate limit exceeded for user ID 1."
    assert response.headers["x-ratelimit-remaining"] == "0"
    assert 110 <= int(response.headers["x-ratelimit-reset"]) - time.time() <= 121
    assert (await control.post("/_rate_limit", json={"seconds": -1})).status_code == 422  # as GitHub refuses a body
    await control.post("/_rate_limit", json={"seconds": 0})
    assert (await github.rest.repos.async_get("acme", "api")).status_code == 200
