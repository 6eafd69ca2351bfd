"""The sign-in cookie at the HTTP edge (the real guard and Litestar's session middleware, on a
small app): it authenticates spec 003's /api/* routes as its workspace and no other route, a
change made with it alone needs X-Requested-With, and a forged, altered or stale cookie is no
sign-in (a 401, never a 500)."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from litestar import Litestar, Request, get, post
from litestar.params import FromQuery
from litestar.testing import TestClient

from libs.config import Settings
from libs.web.auth import caller, require_key
from libs.web.errors import HANDLERS
from libs.web.session import COOKIE, MAX_AGE_S, USER, SignedIn, session_middleware
from libs.web.state import EdgeState, install

SECRET = "s" * 40


@get("/api/whoami")
async def whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
    found = caller(request)
    return {"workspace": found.workspace_id, "login": found.github_login, "key": found.key_id}


@post("/api/change", status_code=200)
async def change(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"workspace": caller(request).workspace_id}


@get("/api/v1/workspaces/ws-1/orchestration/config")
async def spec_001(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"workspace": caller(request).workspace_id}


@get("/tasks/t-1")
async def spec_000(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"workspace": caller(request).workspace_id}


@get("/api/sign-me-in", opt={"public": True})
async def sign_me_in(request: Request[Any, Any, Any], age: FromQuery[int] = 0) -> None:
    """Stands in for the callback: a sign-in of `age` seconds ago."""
    user = SignedIn(
        workspace_id="ws-1", github_user_id=7, login="alice", token="gho_x", signed_in_at=int(time.time()) - age
    )
    request.set_session({USER: msgspec.to_builtins(user)})


def app(public_url: str = "http://localhost:8080") -> Litestar:
    settings = Settings(
        service="test", database_url="postgresql://unused", session_secret=SECRET, public_url=public_url
    )
    built = Litestar(
        [whoami, change, spec_001, spec_000, sign_me_in],
        guards=[require_key],
        middleware=[session_middleware(settings)],
        exception_handlers=HANDLERS,
    )
    install(built, EdgeState(settings, pool=None))  # type: ignore[arg-type]  # no key is checked here
    return built


@pytest.fixture
def client() -> Iterator[TestClient[Litestar]]:
    with TestClient(app()) as test_client:
        yield test_client


def test_the_cookie_authenticates_spec_003_routes_as_its_workspace(client: TestClient[Litestar]) -> None:
    assert client.get("/api/whoami").status_code == 401
    client.get("/api/sign-me-in")

    answer = client.get("/api/whoami")

    assert answer.status_code == 200
    assert answer.json() == {"workspace": "ws-1", "login": "alice", "key": None}


def test_the_cookie_does_not_authenticate_other_specs_routes(client: TestClient[Litestar]) -> None:
    client.get("/api/sign-me-in")

    for path in ("/api/v1/workspaces/ws-1/orchestration/config", "/tasks/t-1"):
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert answer.json()["error"] == "unauthorized"


def test_a_change_by_cookie_needs_the_custom_header(client: TestClient[Litestar]) -> None:
    client.get("/api/sign-me-in")

    bare = client.post("/api/change")
    from_a_script = client.post("/api/change", headers={"X-Requested-With": "fetch"})

    assert bare.status_code == 403
    assert "X-Requested-With" in bare.json()["message"]
    assert from_a_script.status_code == 200
    assert from_a_script.json() == {"workspace": "ws-1"}


def test_a_forged_or_altered_cookie_is_no_sign_in(client: TestClient[Litestar]) -> None:
    client.get("/api/sign-me-in")
    genuine = client.cookies[COOKIE]
    raw = bytearray(base64.b64decode(genuine))
    raw[20] ^= 1
    forgeries = {
        "altered": base64.b64encode(bytes(raw)).decode(),
        "malformed expiry": base64.b64encode(b"n" * 12 + b"junk" + b"additional_authenticated_data=not json").decode(),
        "expiry of another type": base64.b64encode(b"n" * 12 + b"additional_authenticated_data=[1]").decode(),
        "not base64": "%%%",
    }
    for case, forged in forgeries.items():
        client.cookies.clear()
        client.cookies.set(COOKIE, forged)
        answer = client.get("/api/whoami")
        assert answer.status_code == 401, case


def test_a_sign_in_lasts_its_max_age_however_often_it_is_used(client: TestClient[Litestar]) -> None:
    client.get("/api/sign-me-in", params={"age": MAX_AGE_S + 1})

    assert client.get("/api/whoami").status_code == 401


def test_the_cookie_is_http_only_same_site_lax_and_secure_unless_the_public_url_is_http() -> None:
    with TestClient(app("https://agents.example.com")) as secure, TestClient(app("http://localhost:8080")) as plain:
        over_https = secure.get("/api/sign-me-in").headers["set-cookie"].lower()
        over_http = plain.get("/api/sign-me-in").headers["set-cookie"].lower()

    for header in (over_https, over_http):
        assert header.startswith(f"{COOKIE}=")
        assert "httponly" in header
        assert "samesite=lax" in header
    assert "secure" in over_https
    assert "secure" not in over_http


def test_without_a_long_enough_secret_nobody_can_sign_in() -> None:
    for secret in (None, "short"):
        settings = Settings(service="test", database_url="postgresql://unused", session_secret=secret)
        assert session_middleware(settings) is None
