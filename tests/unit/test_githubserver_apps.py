"""The local GitHub server's App, OAuth, user, issue and webhook endpoints, exercised through
githubkit (in-process, over ASGI) as the product uses them: the App's JWT checked as GitHub checks
it, installation tokens reaching only their installation's repositories, the OAuth web flow with
its one-use codes, and signed `issue_comment` deliveries."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import msgspec
import pytest
from githubkit import AppAuthStrategy, AppInstallationAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import RequestFailed
from litestar import Litestar, Request, post

from libs.githubserver import app_jwt
from libs.githubserver.accounts import App, generate_private_key
from libs.githubserver.app import create_app
from libs.githubserver.common import GitHubError
from libs.githubserver.state import Hosting
from tests.servers import serve_in_thread

TOKEN = "test-github-token"
BASE = "http://github.test"
CALLBACK = "http://gateway.test/api/auth/github/callback"


@pytest.fixture(scope="module")
def the_app() -> App:
    # One key for the module: generating an RSA key takes a while.
    app = App.generate(id=77)
    app.webhook_secret = "hook-secret"
    return app


@pytest.fixture
def hosting(the_app: App) -> Hosting:
    the_app.callback_url = None
    return Hosting(TOKEN, the_app)


@pytest.fixture
def server(hosting: Hosting) -> Litestar:
    return create_app(hosting)


def transport(server: Litestar) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=server)  # type: ignore[arg-type]


def client(server: Litestar, strategy: Any) -> GitHub[Any]:
    # A cache of its own: githubkit keeps JWTs and installation tokens in a process-wide cache
    # by App id and installation id, which every test's fresh server reuses.
    return GitHub(
        strategy,
        base_url=BASE,
        async_transport=transport(server),
        http_cache=False,
        auto_retry=False,
        cache_strategy=MemCacheStrategy(),
    )


def as_app(server: Litestar, app: App) -> GitHub[AppAuthStrategy]:
    return client(server, AppAuthStrategy(app.id, app.private_key))


def as_installation(server: Litestar, app: App, installation_id: int) -> GitHub[AppInstallationAuthStrategy]:
    return client(server, AppInstallationAuthStrategy(app.id, app.private_key, installation_id))


def with_token(server: Litestar, token: str) -> GitHub[TokenAuthStrategy]:
    return client(server, TokenAuthStrategy(token))


@pytest.fixture
async def control(server: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport(server), base_url=BASE) as http:
        yield http


async def made(control: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await control.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def failure(exc: pytest.ExceptionInfo[RequestFailed]) -> tuple[int, str]:
    return exc.value.response.status_code, exc.value.response.json()["message"]


async def signed_in_user_token(control: httpx.AsyncClient, app: App, login: str) -> str:
    """The OAuth web flow as a browser and a client would run it: a token for `login`."""
    await made(control, "/_session", {"login": login}, 204)
    asked = {"client_id": app.client_id, "redirect_uri": CALLBACK, "state": "s"}
    back = await control.get("/login/oauth/authorize", params=asked)
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    exchange = {"client_id": app.client_id, "client_secret": app.client_secret, "code": code}
    answer = await control.post("/login/oauth/access_token", json=exchange, headers={"Accept": "application/json"})
    return str(answer.json()["access_token"])


# --- the App's JWT ----------------------------------------------------------------------------


async def test_the_app_reads_itself_and_an_installation_with_its_jwt(
    server: Litestar, the_app: App, control: httpx.AsyncClient
) -> None:
    await made(control, "/_users", {"login": "acme", "type": "Organization"})
    installed = await made(control, "/_installations", {"account": "acme"})

    async with as_app(server, the_app) as github:
        me = (await github.rest.apps.async_get_authenticated()).parsed_data
        found = (await github.rest.apps.async_get_installation(installed["id"])).parsed_data
        with pytest.raises(RequestFailed) as unknown:
            await github.rest.apps.async_get_installation(installed["id"] + 1000)

    assert (me.id, me.slug, me.client_id) == (77, "agent-orchestrator", the_app.client_id)
    assert me.installations_count == 1
    assert found.id == installed["id"]
    assert found.account is not None and found.account.login == "acme"  # type: ignore[union-attr]
    assert (found.target_type, found.repository_selection, found.app_id) == ("Organization", "all", 77)
    assert failure(unknown) == (404, "Not Found")


def test_a_jwt_is_refused_as_github_refuses_it(the_app: App) -> None:
    now = time.time()

    def signed(claims: dict[str, Any], key: str | None = None) -> str:
        return jwt.encode(claims, key or the_app.private_key, algorithm="RS256")

    good = {"iss": str(the_app.id), "iat": int(now) - 60, "exp": int(now) + 540}
    app_jwt.verify(signed(good), the_app, now)
    app_jwt.verify(signed({**good, "iss": the_app.client_id}), the_app, now)
    refusals = {
        "another key": (signed(good, generate_private_key()), app_jwt.UNDECODABLE),
        "not a JWT": ("not.a.jwt", app_jwt.UNDECODABLE),
        "another App": (signed({**good, "iss": "78"}), app_jwt.UNKNOWN_ISSUER),
        "expired": (signed({**good, "exp": int(now) - 1}), app_jwt.BAD_EXP),
        "too long": (signed({**good, "exp": int(now) + 3600}), app_jwt.FAR_EXP),
        "issued in the future": (signed({**good, "iat": int(now) + 300}), app_jwt.BAD_IAT),
    }
    for case, (token, message) in refusals.items():
        with pytest.raises(GitHubError) as refused:
            app_jwt.verify(token, the_app, now)
        assert (refused.value.status, refused.value.message) == (401, message), case


async def test_app_routes_take_only_the_apps_jwt(server: Litestar, the_app: App) -> None:
    impostor = App.generate(id=77)
    async with with_token(server, TOKEN) as by_token, as_app(server, impostor) as by_other_key:
        with pytest.raises(RequestFailed) as token_refused:
            await by_token.rest.apps.async_get_authenticated()
        with pytest.raises(RequestFailed) as key_refused:
            await by_other_key.rest.apps.async_get_authenticated()

    assert failure(token_refused) == (401, app_jwt.UNDECODABLE)
    assert failure(key_refused) == (401, app_jwt.UNDECODABLE)


# --- installation tokens ----------------------------------------------------------------------


async def test_an_installation_token_reaches_its_repositories_only(
    server: Litestar, the_app: App, control: httpx.AsyncClient
) -> None:
    await made(control, "/_users", {"login": "acme", "type": "Organization"})
    await made(control, "/_users", {"login": "other", "type": "Organization"})
    for repo in ("acme/app", "acme/web", "other/app"):
        owner, name = repo.split("/")
        await made(control, "/_repos", {"owner": owner, "repo": name, "files": {"README.md": "# x\n"}})
    installed = await made(control, "/_installations", {"account": "acme", "repositories": ["acme/app"]})
    github = as_installation(server, the_app, installed["id"])

    async with github:
        listed = (await github.rest.apps.async_list_repos_accessible_to_installation()).parsed_data
        own = (await github.rest.repos.async_get("acme", "app")).parsed_data
        with pytest.raises(RequestFailed) as not_selected:
            await github.rest.repos.async_get("acme", "web")
        with pytest.raises(RequestFailed) as elsewhere:
            await github.rest.repos.async_get("other", "app")
        with pytest.raises(RequestFailed) as not_a_user:
            await github.rest.users.async_get_authenticated()

    assert (listed.total_count, [r.full_name for r in listed.repositories]) == (1, ["acme/app"])
    assert listed.repository_selection == "selected"
    assert own.full_name == "acme/app"
    assert failure(not_selected) == (404, "Not Found")
    assert failure(elsewhere) == (404, "Not Found")
    assert failure(not_a_user) == (403, "Resource not accessible by integration")


async def test_an_installation_token_expires_after_an_hour(
    server: Litestar, the_app: App, hosting: Hosting, control: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await made(control, "/_users", {"login": "acme", "type": "Organization"})
    installed = await made(control, "/_installations", {"account": "acme"})
    async with as_app(server, the_app) as github:
        token = (await github.rest.apps.async_create_installation_access_token(installed["id"])).parsed_data
    later = time.time() + 3601
    monkeypatch.setattr(time, "time", lambda: later)

    async with with_token(server, token.token) as expired:
        with pytest.raises(RequestFailed) as refused:
            await expired.rest.repos.async_get("acme", "app")

    assert token.token.startswith("ghs_")
    assert failure(refused) == (401, "Bad credentials")


# --- OAuth ------------------------------------------------------------------------------------


async def test_authorize_sends_the_browser_back_with_a_code_and_the_state(
    control: httpx.AsyncClient, the_app: App
) -> None:
    await made(control, "/_users", {"login": "alice", "name": "Alice", "orgs": ["acme"]})
    await made(control, "/_session", {"login": "alice"}, 204)

    back = await control.get(
        "/login/oauth/authorize", params={"client_id": the_app.client_id, "redirect_uri": CALLBACK, "state": "xyz"}
    )

    assert back.status_code == 302
    location = urlsplit(back.headers["location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == CALLBACK
    assert query["state"] == ["xyz"]
    assert len(query["code"][0]) == 20


async def test_authorize_without_a_signed_in_person_or_for_another_client_does_not_hand_out_a_code(
    control: httpx.AsyncClient, the_app: App
) -> None:
    asked = {"client_id": the_app.client_id, "redirect_uri": CALLBACK, "state": "s2"}
    nobody = await control.get("/login/oauth/authorize", params=asked)
    unknown = await control.get("/login/oauth/authorize", params={**asked, "client_id": "Iv1.nope"})

    # As GitHub does: to its sign-in page first, which comes back here.
    assert (nobody.status_code, urlsplit(nobody.headers["location"]).path) == (302, "/login")
    assert "code=" not in nobody.headers["location"]
    assert unknown.status_code == 404
    assert "location" not in unknown.headers


async def test_the_sign_in_page_signs_a_user_in_and_goes_back_to_authorize(
    control: httpx.AsyncClient, the_app: App
) -> None:
    await made(control, "/_users", {"login": "alice"})
    asked = {"client_id": the_app.client_id, "redirect_uri": CALLBACK, "state": "s3"}
    to_sign_in = (await control.get("/login/oauth/authorize", params=asked)).headers["location"]
    authorize = urlsplit(parse_qs(urlsplit(to_sign_in).query)["return_to"][0])

    signed_in = await control.get(
        "/login", params={"login": "alice", "return_to": f"{authorize.path}?{authorize.query}"}
    )
    back = await control.get(signed_in.headers["location"])
    elsewhere = await control.get("/login", params={"login": "alice", "return_to": "https://evil.test/"})

    assert signed_in.status_code == 302
    query = parse_qs(urlsplit(back.headers["location"]).query)
    assert query["state"] == ["s3"]
    assert len(query["code"][0]) == 20
    assert elsewhere.headers["location"] == "/"


async def test_a_redirect_elsewhere_than_the_registered_callback_is_sent_to_the_callback_with_an_error(
    control: httpx.AsyncClient, the_app: App
) -> None:
    the_app.callback_url = CALLBACK
    await made(control, "/_users", {"login": "alice"})
    asked = {"client_id": the_app.client_id, "redirect_uri": "http://evil.test/steal", "state": "s1", "login": "alice"}

    back = await control.get("/login/oauth/authorize", params=asked)

    location = urlsplit(back.headers["location"])
    assert location.netloc == "gateway.test"
    assert parse_qs(location.query) == {
        "error": ["redirect_uri_mismatch"],
        "error_description": ["The redirect_uri MUST match the registered callback URL for this application."],
        "error_uri": [parse_qs(location.query)["error_uri"][0]],
        "state": ["s1"],
    }


async def test_a_code_is_exchanged_once_for_the_users_token(control: httpx.AsyncClient, the_app: App) -> None:
    await made(control, "/_users", {"login": "alice"})
    back = await control.get(
        "/login/oauth/authorize", params={"client_id": the_app.client_id, "redirect_uri": CALLBACK, "login": "alice"}
    )
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    exchange = {"client_id": the_app.client_id, "client_secret": the_app.client_secret, "code": code}
    as_json = {"Accept": "application/json"}

    wrong_secret = await control.post(
        "/login/oauth/access_token", json={**exchange, "client_secret": "nope"}, headers=as_json
    )
    first = await control.post("/login/oauth/access_token", json=exchange, headers=as_json)
    again = await control.post("/login/oauth/access_token", json=exchange, headers=as_json)

    assert wrong_secret.status_code == 200  # GitHub answers a refusal with a 200
    assert wrong_secret.json()["error"] == "incorrect_client_credentials"
    assert first.status_code == 200
    assert first.json()["token_type"] == "bearer"
    assert first.json()["access_token"].startswith("ghu_")
    assert again.status_code == 200
    assert again.json()["error"] == "bad_verification_code"
    assert again.json()["error_description"] == "The code passed is incorrect or expired."
    assert "access_token" not in again.json()


async def test_the_exchange_answers_a_form_unless_json_is_asked_for(control: httpx.AsyncClient, the_app: App) -> None:
    await made(control, "/_users", {"login": "alice"})
    back = await control.get(
        "/login/oauth/authorize", params={"client_id": the_app.client_id, "redirect_uri": CALLBACK, "login": "alice"}
    )
    code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
    form = {"client_id": the_app.client_id, "client_secret": the_app.client_secret, "code": code}

    answer = await control.post("/login/oauth/access_token", data=form)

    assert answer.headers["content-type"].startswith("application/x-www-form-urlencoded")
    fields = parse_qs(answer.text)
    assert fields["token_type"] == ["bearer"]
    assert fields["access_token"][0].startswith("ghu_")


async def test_a_users_token_reads_the_user_its_organizations_and_its_installations(
    server: Litestar, control: httpx.AsyncClient, the_app: App
) -> None:
    await made(control, "/_users", {"login": "alice", "name": "Alice", "email": "a@x.test", "orgs": ["acme"]})
    await made(control, "/_users", {"login": "other", "type": "Organization"})
    mine = await made(control, "/_installations", {"account": "acme"})
    await made(control, "/_installations", {"account": "other"})
    token = await signed_in_user_token(control, the_app, "alice")

    async with with_token(server, token) as github:
        user = (await github.rest.users.async_get_authenticated()).parsed_data
        orgs = (await github.rest.orgs.async_list_for_authenticated_user()).parsed_data
        installations = (await github.rest.apps.async_list_installations_for_authenticated_user()).parsed_data

    assert (user.login, user.name, user.email) == ("alice", "Alice", "a@x.test")
    assert user.id > 0
    assert [org.login for org in orgs] == ["acme"]
    assert [i.id for i in installations.installations] == [mine["id"]]
    assert installations.total_count == 1


async def test_the_installation_lists_page_alike_for_the_app_an_installation_and_a_user(
    server: Litestar, control: httpx.AsyncClient, the_app: App
) -> None:
    await made(control, "/_users", {"login": "alice", "orgs": ["acme", "beta", "gamma"]})
    for org in ("acme", "beta", "gamma"):
        await made(control, "/_users", {"login": org, "type": "Organization"})
    for name in ("c", "a", "b"):
        await made(control, "/_repos", {"owner": "acme", "repo": name, "files": {"README.md": "# x\n"}})
    ids = [(await made(control, "/_installations", {"account": org}))["id"] for org in ("gamma", "acme", "beta")]
    token = await signed_in_user_token(control, the_app, "alice")

    async with as_app(server, the_app) as app, as_installation(server, the_app, ids[1]) as acme:
        by_app = (await app.rest.apps.async_list_installations(per_page=2, page=2)).parsed_data
        repos = (await acme.rest.apps.async_list_repos_accessible_to_installation(per_page=2, page=1)).parsed_data
    async with with_token(server, token) as github:
        apps = github.rest.apps
        mine = (await apps.async_list_installations_for_authenticated_user(per_page=1, page=3)).parsed_data
        repos_of = await apps.async_list_installation_repos_for_authenticated_user(ids[1], per_page=1, page=3)
        beyond = (await apps.async_list_installations_for_authenticated_user(page=9)).parsed_data

    # In GitHub's orders (installations by id, repositories by full name), total counts of all.
    assert [i.id for i in by_app] == sorted(ids)[2:]
    assert (repos.total_count, [r.full_name for r in repos.repositories]) == (3, ["acme/a", "acme/b"])
    assert (mine.total_count, [i.id for i in mine.installations]) == (3, sorted(ids)[2:])
    assert [r.full_name for r in repos_of.parsed_data.repositories] == ["acme/c"]
    assert (beyond.total_count, beyond.installations) == (3, [])


async def test_only_a_users_app_token_lists_installations(server: Litestar) -> None:
    async with with_token(server, TOKEN) as github:
        with pytest.raises(RequestFailed) as refused:
            await github.rest.apps.async_list_installations_for_authenticated_user()

    assert failure(refused)[0] == 403


# --- issues and roles -------------------------------------------------------------------------


async def test_an_issue_is_read_and_commented_on_and_a_bots_comment_says_so(
    server: Litestar, control: httpx.AsyncClient, the_app: App
) -> None:
    await made(control, "/_users", {"login": "acme", "type": "Organization"})
    await made(control, "/_repos", {"owner": "acme", "repo": "app", "files": {"a.py": "x = 1\n"}})
    opened = await made(
        control,
        "/_issues",
        {"owner": "acme", "repo": "app", "title": "Validate input", "body": "Please", "user": "bob"},
    )
    installed = await made(control, "/_installations", {"account": "acme"})
    github = as_installation(server, the_app, installed["id"])

    async with github:
        issue = (await github.rest.issues.async_get("acme", "app", opened["number"])).parsed_data
        comment = (
            await github.rest.issues.async_create_comment("acme", "app", opened["number"], body="On it: task t-1")
        ).parsed_data
        again = (await github.rest.issues.async_get("acme", "app", opened["number"])).parsed_data
        with pytest.raises(RequestFailed) as missing:
            await github.rest.issues.async_get("acme", "app", 99)

    assert (issue.number, issue.title, issue.body, issue.state) == (1, "Validate input", "Please", "open")
    assert issue.user is not None and issue.user.login == "bob"
    assert issue.html_url == f"{BASE}/acme/app/issues/1"
    assert comment.body == "On it: task t-1"
    assert comment.user is not None
    assert (comment.user.login, comment.user.type) == ("agent-orchestrator[bot]", "Bot")
    assert again.comments == 1
    assert failure(missing) == (404, "Not Found")


async def test_a_users_permission_on_a_repository(server: Litestar, control: httpx.AsyncClient) -> None:
    await made(control, "/_users", {"login": "alice"})
    await made(control, "/_users", {"login": "bob"})
    await made(control, "/_users", {"login": "carol"})
    await made(control, "/_repos", {"owner": "alice", "repo": "app", "files": {}})
    await made(control, "/_collaborators", {"owner": "alice", "repo": "app", "user": "bob", "role": "maintain"}, 204)

    async with with_token(server, TOKEN) as github:
        owner = (await github.rest.repos.async_get_collaborator_permission_level("alice", "app", "alice")).parsed_data
        maintainer = (
            await github.rest.repos.async_get_collaborator_permission_level("alice", "app", "bob")
        ).parsed_data
        reader = (await github.rest.repos.async_get_collaborator_permission_level("alice", "app", "carol")).parsed_data
        with pytest.raises(RequestFailed) as nobody:
            await github.rest.repos.async_get_collaborator_permission_level("alice", "app", "ghost")

    assert (owner.permission, owner.role_name) == ("admin", "admin")
    assert (maintainer.permission, maintainer.role_name) == ("write", "maintain")
    assert (reader.permission, reader.role_name) == ("read", "read")
    assert maintainer.user is not None and maintainer.user.login == "bob"
    assert failure(nobody) == (404, "Not Found")


# --- webhooks ---------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    received: list[tuple[dict[str, str], bytes]] = []

    @post("/hook", status_code=202)
    async def hook(request: Request[Any, Any, Any]) -> dict[str, str]:
        received.append((dict(request.headers), await request.body()))
        return {"status": "accepted"}

    with serve_in_thread(Litestar([hook])) as url:
        yield f"{url}/hook", received


async def test_an_issue_comment_is_delivered_signed_to_a_url(
    server: Litestar, control: httpx.AsyncClient, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver
    await made(control, "/_users", {"login": "acme", "type": "Organization"})
    await made(control, "/_repos", {"owner": "acme", "repo": "app", "files": {}})
    issue = await made(control, "/_issues", {"owner": "acme", "repo": "app", "title": "Add validation"})
    installed = await made(control, "/_installations", {"account": "acme"})
    comment = {"owner": "acme", "repo": "app", "issue": issue["number"], "body": "/agent codegen go", "sender": "bob"}

    sent = await made(control, "/_webhooks", {"url": url, **comment}, 200)
    again = await made(control, "/_webhooks", {"url": url, **comment, "delivery": sent["delivery"]}, 200)

    assert (sent["status"], msgspec.json.decode(sent["response"])) == (202, {"status": "accepted"})
    headers, body = received[0]
    expected = "sha256=" + hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert headers["x-hub-signature-256"] == expected == sent["signature"]
    assert headers["x-github-event"] == "issue_comment"
    assert headers["x-github-delivery"] == sent["delivery"]
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    event = msgspec.json.decode(body)
    assert event["action"] == "created"
    assert (event["issue"]["number"], event["issue"]["title"]) == (issue["number"], "Add validation")
    assert (event["comment"]["body"], event["comment"]["user"]["login"]) == ("/agent codegen go", "bob")
    assert event["repository"]["full_name"] == "acme/app"
    assert event["installation"]["id"] == installed["id"]
    assert event["organization"]["login"] == "acme"
    assert event["sender"]["login"] == "bob"
    # A redelivery carries the same delivery id; each created comment is on the issue.
    assert received[1][0]["x-github-delivery"] == sent["delivery"] == again["delivery"]
    async with with_token(server, TOKEN) as github:
        on_the_issue = (await github.rest.issues.async_get("acme", "app", issue["number"])).parsed_data
    assert on_the_issue.comments == 2


async def test_a_delivery_can_carry_a_wrong_signature_or_any_body(
    control: httpx.AsyncClient, receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = receiver

    await made(control, "/_webhooks", {"url": url, "event": "ping", "payload": {"zen": "Keep it simple."}}, 200)
    await made(control, "/_webhooks", {"url": url, "event": "ping", "payload": {}, "signature": "sha256=00"}, 200)
    nothing_to_build = await control.post("/_webhooks", json={"url": url, "event": "push"})

    assert received[0][0]["x-github-event"] == "ping"
    assert msgspec.json.decode(received[0][1]) == {"zen": "Keep it simple."}
    assert received[1][0]["x-hub-signature-256"] == "sha256=00"
    assert nothing_to_build.status_code == 422
    assert len(received) == 2
