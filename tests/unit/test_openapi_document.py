"""The OpenAPI documents the gateway and the stream service serve say what their servers answer:
each error status a route can give, with the body the exception handlers send, the Retry-After
of a 503, the parameters as they are checked, the review's rule for feedback. And the answers the
router gives before any route (405, a WebSocket asked over HTTP) say what HTTP asks them to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest
from litestar import Litestar, WebSocket, get, post, websocket
from litestar.params import FromPath
from litestar.testing import TestClient

from contracts.tasks import ErrorBody
from libs.config import Settings
from libs.web.errors import HANDLERS, ApiError
from services.gateway.app import create_app as gateway_app
from services.stream.app import create_app as stream_app

SETTINGS = Settings(service="test", database_url="postgresql://unused")
EVENTS = "/api/v1/workspaces/{workspaceID}/orchestration"
CONFIG = "/api/v1/workspaces/{workspace_id}/orchestration"
# What each route can answer besides its success, read from the routes, the guard and the
# exception handlers: 401/403 the guard (an admin route takes a token, never revoked), 503 the
# database or an owner away, 404 an id the caller cannot see, 400 a parameter or body refused,
# 413 a body too large, 409 a workspace that exists, a run not paused or a task that cannot be stopped or
# retried now, 410 a resume point before a purge.
KEY = {401, 403, 503}
ADMIN = {401, 503}
EXPECTED = {
    ("get", "/health"): set(),
    ("post", "/tasks"): KEY | {400, 413},
    ("get", "/tasks/{task_id}"): KEY | {404},
    ("post", "/tasks/{task_id}/review"): KEY | {400, 404, 413},
    ("get", "/costs"): KEY | {400},
    ("get", "/tasks/{task_id}/stream"): {426},
    ("post", "/admin/workspaces"): ADMIN | {400, 409, 413},
    ("get", "/admin/workspaces/{workspace_id}"): ADMIN | {404},
    ("post", "/admin/workspaces/{workspace_id}/keys"): ADMIN | {400, 404, 413},
    ("delete", "/admin/workspaces/{workspace_id}/keys/{key_id}"): ADMIN | {404},
    ("get", f"{CONFIG}/config"): KEY | {404},
    ("patch", f"{CONFIG}/config"): KEY | {400, 404, 413},
    ("post", f"{CONFIG}/purge"): KEY | {404},
    # Spec 003's settings and credentials: 503 also without SECRETS_KEY; checking the stored key, 404
    # when there is none and 409 when it does not open.
    ("get", "/api/config"): KEY,
    ("put", "/api/config"): KEY | {400, 413},
    ("put", "/api/config/credentials"): KEY | {400, 413},
    ("get", "/api/config/provider-credentials"): KEY,
    ("put", "/api/config/provider-credentials"): KEY | {400, 413},
    ("get", "/api/config/providers"): KEY,
    ("post", "/api/config/validate/anthropic"): KEY | {400, 404, 409, 413},
    ("get", "/api/config/fly"): KEY,
    ("put", "/api/config/fly"): KEY | {400, 413},
    ("post", "/api/config/validate/fly"): KEY | {400, 404, 409, 413},
    ("get", f"{EVENTS}/questions"): KEY | {404},
    ("get", f"{EVENTS}/questions/{{questionID}}"): KEY | {404},
    ("post", f"{EVENTS}/questions/{{questionID}}/answer"): KEY | {400, 404, 413},
    ("get", f"{EVENTS}/log"): KEY | {400, 404},
    ("get", f"{EVENTS}/files/{{digest}}"): KEY | {404},
    ("get", f"{EVENTS}/events"): KEY | {400, 404, 410},
    ("get", f"{EVENTS}/events/connections"): KEY | {404},
    ("get", f"{EVENTS}/debug-dump"): KEY | {404},
    ("get", f"{EVENTS}/log/stream"): KEY | {400, 404, 410},
    ("get", "/api/v1/orchestrations"): KEY,
    ("get", "/api/v1/orchestrations/{orch_id}"): KEY | {404},
    ("post", "/api/v1/orchestrations/{orch_id}/run"): KEY | {400, 404, 413},
    ("post", "/api/v1/orchestrations/{orch_id}/run/stream"): KEY | {400, 404, 413},
    ("post", "/api/v1/orchestrations/runs/{run_id}/resume"): KEY | {400, 404, 409, 413},
    ("post", "/api/v1/orchestrations/runs/{run_id}/resume/stream"): KEY | {400, 404, 409, 413},
    ("get", "/api/tasks"): KEY | {400},
    ("post", "/api/tasks"): KEY | {400, 413},
    ("get", "/api/tasks/history"): KEY | {400},
    ("get", "/api/tasks/{task_id}/status"): KEY | {404},
    ("post", "/api/tasks/{task_id}/retry"): KEY | {404, 409},
    ("post", "/api/tasks/{task_id}/stop"): KEY | {404, 409},
    # Spec 003's sign-in: 503 while the server lacks a setting, 502 GitHub away, 409 an
    # installation of another workspace, 403 also a key-less change without X-Requested-With.
    ("get", "/api/auth/github"): {503},
    ("get", "/api/auth/github/callback"): {400, 502, 503},
    ("get", "/api/auth/github/installed"): KEY | {400, 404, 409, 502},
    ("get", "/api/auth/diagnostics"): set(),
    ("post", "/api/auth/logout"): {403},
    # Spec 003's GitHub data: 409 a key's workspace without a usable GitHub token, 429 GitHub's rate
    # limit used up, 502 GitHub away; 403 also a stored personal token GitHub refuses for installations.
    ("get", "/api/github/profile"): KEY | {409, 429, 502},
    ("get", "/api/github/orgs"): KEY | {409, 429, 502},
    ("get", "/api/github/installations"): KEY | {409, 429, 502},
    ("get", "/api/github/repositories"): KEY | {409, 429, 502},
    ("get", "/api/github/summary"): KEY | {409, 429, 502},
    ("get", "/api/github/issues/{owner}/{repo}/{number}"): KEY | {400, 404, 409, 429, 502},
    ("get", "/api/rate-limit"): KEY | {409, 429, 502},
    # A dependency away is an item of the answer, not an error.
    ("get", "/api/startup/check"): KEY,
    # GitHub's deliveries: signed, not keyed (401 a signature that does not match); 503 also
    # without GITHUB_WEBHOOK_SECRET.
    ("post", "/api/webhooks/github"): {400, 401, 413, 503},
    ("post", "/api/callbacks/complete"): {400, 401, 409, 413, 503},
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {
        "gateway": gateway_app(SETTINGS).openapi_schema.to_schema(),
        "stream": stream_app(SETTINGS).openapi_schema.to_schema(),
    }


def _operations(documents: dict[str, dict[str, Any]]) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for document in documents.values():
        for path, item in document["paths"].items():
            for method, operation in item.items():
                yield method, path, operation, document


def _errors(operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {int(status): r for status, r in operation["responses"].items() if int(status) >= 400}


def test_each_operation_documents_every_error_status_it_answers(documents: dict[str, dict[str, Any]]) -> None:
    documented = {(method, path): set(_errors(op)) for method, path, op, _ in _operations(documents)}

    assert documented == EXPECTED


def test_every_error_is_documented_with_the_error_body_the_server_sends(documents: dict[str, dict[str, Any]]) -> None:
    sent = msgspec.json.schema(ErrorBody)["$defs"]["ErrorBody"]
    for method, path, operation, document in _operations(documents):
        for status, response in _errors(operation).items():
            assert response["content"] == {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
            }, (method, path, status)
            assert response["description"], (method, path, status)
        body = document["components"]["schemas"]["ErrorBody"]
        assert (body["properties"], body["required"]) == (sent["properties"], sent["required"])


def test_a_401_says_how_to_authenticate(documents: dict[str, dict[str, Any]]) -> None:
    operations = {(method, path): op for method, path, op, _ in _operations(documents)}
    for (method, path), statuses in EXPECTED.items():
        if 401 in statuses:
            challenge = operations[method, path]["responses"]["401"]["headers"]["WWW-Authenticate"]
            assert challenge["required"] is True, (method, path)
            assert challenge["schema"]["const"].startswith("Bearer "), (method, path)


def test_a_503_says_when_to_try_again(documents: dict[str, dict[str, Any]]) -> None:
    operations = {(method, path): op for method, path, op, _ in _operations(documents)}
    for (method, path), statuses in EXPECTED.items():
        if 503 in statuses:
            retry_after = operations[method, path]["responses"]["503"]["headers"]["Retry-After"]
            assert retry_after["required"] is True, (method, path)
            assert retry_after["schema"]["type"] == "integer", (method, path)


def _parameter(documents: dict[str, dict[str, Any]], method: str, path: str, name: str) -> dict[str, Any]:
    operation = next(op for m, p, op, _ in _operations(documents) if (m, p) == (method, path))
    return next(p for p in operation["parameters"] if p["name"] == name)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/costs", "since"),
        (f"{EVENTS}/log", "since"),
        (f"{EVENTS}/log", "until"),
    ],
)
def test_a_time_or_seq_that_is_refused_below_zero_is_documented_so(
    documents: dict[str, dict[str, Any]], path: str, name: str
) -> None:
    parameter = _parameter(documents, "get", path, name)

    assert parameter["required"] is False
    # Sent as an integer or not at all: a query string has no null.
    assert parameter["schema"]["type"] == "integer"
    assert parameter["schema"]["minimum"] == 0


def test_the_review_body_needs_feedback_to_reject_or_revise(documents: dict[str, dict[str, Any]]) -> None:
    gateway = documents["gateway"]
    schema = {"$ref": "#/components/schemas/ReviewDecision", "components": gateway["components"]}
    valid = jsonschema.Draft202012Validator(schema).is_valid
    task = "550e8400-e29b-41d4-a716-446655440000"

    assert valid({"taskId": task, "decision": "approve"})
    assert valid({"taskId": task, "decision": "reject", "feedback": "wrong file"})
    for decision in ("reject", "revise"):
        assert not valid({"taskId": task, "decision": decision})
        assert not valid({"taskId": task, "decision": decision, "feedback": None})
        assert not valid({"taskId": task, "decision": decision, "feedback": "  "})


@post("/things")
async def add_thing() -> None:
    return None


@get("/things/{thing:str}")
async def get_thing(thing: FromPath[str]) -> None:
    return None


@websocket("/things/{thing:str}/live")
async def live_thing(socket: WebSocket[Any, Any, Any], thing: FromPath[str]) -> None:
    await socket.accept()
    await socket.close()


@get("/busy")
async def busy() -> None:
    raise ApiError(503, "service_unavailable", "no planner is running")


@get("/mine")
async def mine() -> None:
    raise ApiError(401, "unauthorized", "this endpoint needs an API key: Authorization: Bearer <key>")


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    app = Litestar([add_thing, get_thing, live_thing, busy, mine], exception_handlers=HANDLERS)
    with TestClient(app) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("method", "path", "allowed"), [("GET", "/things", "OPTIONS, POST"), ("DELETE", "/things/a", "GET, OPTIONS")]
)
def test_a_405_names_the_methods_the_path_has(
    client: TestClient[Litestar], method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == 405
    assert sorted(response.headers["Allow"].split(", ")) == allowed.split(", ")
    assert response.json() == {"error": "method_not_allowed", "message": "Method Not Allowed"}


def test_a_websocket_asked_over_plain_http_is_a_426(client: TestClient[Litestar]) -> None:
    response = client.get("/things/a/live")

    assert response.status_code == 426
    assert response.headers["Upgrade"] == "websocket"
    assert response.json()["error"] == "upgrade_required"


def test_every_503_says_when_to_try_again(client: TestClient[Litestar]) -> None:
    response = client.get("/busy")

    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0


def test_every_401_says_how_to_authenticate(client: TestClient[Litestar]) -> None:
    response = client.get("/mine")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="agent-orchestrator"'
