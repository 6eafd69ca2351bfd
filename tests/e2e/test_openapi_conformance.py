"""Each HTTP service's OpenAPI document says what its server does.

schemathesis generates requests from the document each service serves (valid ones, and ones that
break it), sends them to the running stack, and fails on any 5xx and on any status, content type,
header or body the document does not declare for the operation. The run is bounded (EXAMPLES per
operation and mode, about 300 requests in all) and derandomized, so it asks the same every time.
Beside it, the defects it found, each asserted on its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from exports.documents import SCHEMAS_DIR
from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, in_review_and_charged, new_workspace, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Per operation and generation mode (valid, invalid): ~20 operations x 2 x 8.
EXAMPLES = 8
SERVICES = ("gateway", "stream", "runtime")
# Every operation of the product, from the committed document (the export test keeps it fresh):
# each is looked up in the document its service serves.
OPERATIONS = [
    (method.upper(), path)
    for path, item in json.loads((SCHEMAS_DIR / "openapi.json").read_text())["paths"].items()
    for method in item
]
# Path parameters that name a workspace: half the cases name the test's own, so that they get
# past the lookup; the others name one the key may not see (404).
WORKSPACE_PARAMETERS = ("workspace_id", "workspaceID")
# SSE streams never end: their 200 is judged on its status and headers and the first frame.
STREAMS = ("/orchestration/events", "/orchestration/log/stream")


def _url(stack: Stack, service: str) -> str:
    return {"gateway": stack.gateway_url, "stream": stack.stream_url, "runtime": stack.runtime_url}[service]


@pytest.fixture(scope="module")
def documents(stack: Stack) -> dict[str, dict[str, Any]]:
    """The document each HTTP service serves, by service."""
    return {s: httpx.get(f"{_url(stack, s)}/schema/openapi.json", timeout=30).json() for s in SERVICES}


@pytest.fixture(scope="module")
def own(stack: Stack) -> dict[str, str]:
    """A workspace of this module's own: the run changes its config, submits tasks to it and purges it."""
    return new_workspace(stack, "openapi")


@pytest.fixture(scope="module")
def session_token(stack: Stack, own: dict[str, str]) -> str:
    """An agent session of that workspace: the agent runtime's routes act as one."""
    made = httpx.post(
        f"{stack.runtime_url}/api/v1/workspaces/{own['workspaceId']}/agent-sessions",
        json={"name": "openapi"},
        headers=bearer(own["apiKey"]),
        timeout=30,
    )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_in_the_document(
    stack: Stack,
    documents: dict[str, dict[str, Any]],
    own: dict[str, str],
    session_token: str,
    method: str,
    path: str,
) -> None:
    service = next(s for s in SERVICES if method.lower() in documents[s]["paths"].get(path, {}))
    operation = schemathesis.openapi.from_dict(documents[service], config=schemathesis.Config())[path][method]
    base_url = _url(stack, service)
    # Admin routes take the admin token, the agent runtime's a session's token; the others a key
    # of the workspace.
    token = (
        stack.admin_token
        if path.startswith("/admin/")
        else session_token
        if path.startswith("/api/agent/")
        else own["apiKey"]
    )
    mine = {p.name: own["workspaceId"] for p in operation.path_parameters if p.name in WORKSPACE_PARAMETERS}
    call = _streamed if path.endswith(STREAMS) else _called
    failures: list[str] = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        cases = operation.as_strategy(generation_mode=mode)
        if mine:
            cases = st.one_of(cases, operation.as_strategy(generation_mode=mode, path_parameters=mine))
        failures += [f"{mode.value}: {failure}" for failure in _failures(cases, lambda c: call(c, base_url, token))]
    assert not failures, "\n\n".join(failures)


def _failures(cases: st.SearchStrategy[Case], call: Callable[[Case], Any]) -> list[str]:
    """What the checks found in EXAMPLES cases: the first failure is enough to read, and the run
    stays short (no shrinking)."""
    failures: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(cases)
    def run(case: Case) -> None:
        if failures:
            return
        try:
            case.validate_response(call(case), checks=CHECKS)
        except (AssertionError, BaseExceptionGroup) as exc:  # a check's failure, or several
            failures.append(str(exc))

    try:
        run()
    except Unsatisfiable:
        pass  # nothing in the operation can be made invalid (GET /health): no negative case
    return failures


def _called(case: Case, base_url: str, token: str) -> schemathesis.Response:
    return case.call(base_url=base_url, headers=bearer(token), timeout=30)


def _streamed(case: Case, base_url: str, token: str) -> httpx.Response:
    """An SSE route's answer: a refusal whole, a stream up to its first frame (the `: connected`
    comment), then closed."""
    kwargs = case.as_transport_kwargs(base_url=base_url, headers=bearer(token))
    with httpx.stream("GET", kwargs["url"], params=kwargs.get("params"), headers=kwargs["headers"], timeout=30) as sent:
        body = sent.read() if sent.status_code != 200 else next(sent.iter_bytes())
    answer = httpx.Response(sent.status_code, headers=sent.headers, content=body, request=sent.request)
    answer.elapsed = sent.elapsed
    return answer


def test_a_method_a_path_does_not_have_is_a_405_naming_those_it_has(
    stack: Stack, documents: dict[str, dict[str, Any]]
) -> None:
    for service, document in documents.items():
        for path, item in document["paths"].items():
            if path == "/tasks/{task_id}/stream":
                continue  # a WebSocket: below
            url = _url(stack, service) + path.replace("{", "x").replace("}", "x")
            absent = next(m for m in ("PUT", "PATCH", "DELETE") if m.lower() not in item)
            response = httpx.request(absent, url, timeout=30)

            assert response.status_code == 405, (path, response.text)
            assert set(response.headers["Allow"].split(", ")) == {m.upper() for m in item} | {"OPTIONS"}, path
            # In its family's error body: spec 002's diagnostic under /api/agent/.
            family = {"diagnostic", "error"} if path.startswith("/api/agent/") else {"error", "message"}
            assert set(response.json()) == family, path


def test_the_live_logs_asked_without_an_upgrade_say_so(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}/tasks/550e8400-e29b-41d4-a716-446655440000/stream", timeout=30)

    assert response.status_code == 426
    assert response.headers["Upgrade"] == "websocket"
    assert response.json()["error"] == "upgrade_required"


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> Callable[[Any], Iterator[Any]]:
    """Errors of an instance against `schema`, whose $refs point into `document`."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]}).iter_errors


def test_costs_since_a_negative_time_is_refused_and_the_document_says_so(
    stack: Stack, documents: dict[str, dict[str, Any]], own: dict[str, str]
) -> None:
    response = httpx.get(f"{stack.gateway_url}/costs", params={"since": -1}, headers=bearer(own["apiKey"]))
    (since,) = documents["gateway"]["paths"]["/costs"]["get"]["parameters"]

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert list(_validator(documents["gateway"], since["schema"])(-1))
    assert not list(_validator(documents["gateway"], since["schema"])(0))


def test_reject_without_feedback_is_refused_and_the_document_says_so(
    stack: Stack, documents: dict[str, dict[str, Any]], own: dict[str, str]
) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=bearer(own["apiKey"])) as api:
        # The fuzzing above may have left the workspace approving on its own: not for this task.
        config = f"/api/v1/workspaces/{own['workspaceId']}/orchestration/config"
        assert api.patch(config, json={"reviewPolicy": "required"}).status_code == 200
        (task_id,) = submit(api, task_request("reject me without a word"))
        wait_for(api, task_id, in_review_and_charged)
        body = {"taskId": task_id, "decision": "reject"}
        response = api.post(f"/tasks/{task_id}/review", json=body)
        review = documents["gateway"]["paths"]["/tasks/{task_id}/review"]["post"]
        schema = review["requestBody"]["content"]["application/json"]["schema"]

        assert response.status_code == 400
        assert response.json()["error"] == "feedback_required"
        assert list(_validator(documents["gateway"], schema)(body))
        assert not list(_validator(documents["gateway"], schema)({**body, "feedback": "not what was asked"}))
        assert api.get(f"/tasks/{task_id}").json()["task"]["status"] == "review"
