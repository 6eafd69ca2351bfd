"""Bad bodies get a 400 with spec 000's error body and append nothing to the event log."""

from __future__ import annotations

import httpx
import msgspec
import pytest

from contracts.tasks import MAX_TEXT
from libs.devstack.stack import Stack
from tests.e2e.helpers import task_request

pytestmark = pytest.mark.e2e

DUMP = "/api/v1/workspaces/default/orchestration/debug-dump"


def _without(d: dict, key: str) -> dict:
    return {k: v for k, v in d.items() if k != key}


NOT_UTF8 = b'{"tasks": [{"description": "\xe9"}]}'
TOO_DEEP = b'{"tasks": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"  # past msgspec's depth (Python's recursion)
TOO_LONG = "x" * (MAX_TEXT + 1)

BAD_BODIES = {
    "not json": b"{tasks: [",
    "empty": b"",
    "not UTF-8": NOT_UTF8,
    "nested too deep": TOO_DEEP,
    "description too long": {"tasks": [task_request(description=TOO_LONG)]},
    "empty object": b"{}",
    "tasks not a list": b'{"tasks": "codegen"}',
    "no tasks": b'{"tasks": []}',
    "missing description": {"tasks": [_without(task_request(), "description")]},
    "missing repo": {"tasks": [_without(task_request(), "repo")]},
    "missing repo files": {"tasks": [{**task_request(), "repo": _without(task_request()["repo"], "files")}]},
    "unknown agent type": {"tasks": [task_request(agent_type="poet")]},
    "unknown provider": {"tasks": [task_request(config={"provider": "cohere"})]},
    "maxTokens a string": {"tasks": [task_request(config={"maxTokens": "many"})]},
    "negative maxTokens": {"tasks": [task_request(config={"maxTokens": -1})]},
    "files not strings": {"tasks": [{**task_request(), "repo": {**task_request()["repo"], "files": {"a": 1}}}]},
    "description a number": {"tasks": [task_request(description=42)]},
    "one good one bad": {"tasks": [task_request(), task_request(agent_type="poet")]},
    "NUL in the description": {"tasks": [task_request(description="add\u0000validation")]},
    "NUL in a file": {"tasks": [{**task_request(), "repo": {**task_request()["repo"], "files": {"a.py": "x\u0000"}}}]},
    "NUL in a field the API ignores": {"tasks": [task_request(note="\u0000")]},
}


@pytest.fixture
def api(stack: Stack) -> httpx.Client:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as client:
        yield client


def _log_head(stack: Stack) -> int:
    return httpx.get(stack.stream_url + DUMP, timeout=30, headers=stack.auth).json()["logHead"]


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_task_submission_is_a_400_and_changes_nothing(stack: Stack, api: httpx.Client, body: object) -> None:
    head = _log_head(stack)
    if isinstance(body, bytes):
        response = api.post("/tasks", content=body, headers={"content-type": "application/json"})
    else:
        response = api.post("/tasks", json=body)

    assert response.status_code == 400, response.text
    error = response.json()
    assert set(error) == {"error", "message"}
    assert error["error"] and error["message"]
    assert _log_head(stack) == head


def _repo(**changes: object) -> dict:
    return {"tasks": [{**task_request(), "repo": {**task_request()["repo"], **changes}}]}


# Names that would point the product's GitHub credentials at another API path, a pull request
# that could never be opened, files outside the repository: each refused, naming what and why.
BAD_REPOS = {
    "owner climbing up": (_repo(owner=".."), "repo.owner"),
    "owner with a slash": (_repo(owner="a/b"), "repo.owner"),
    "repository climbing up": (_repo(repo=".."), "repo.repo"),
    "repository with a slash": (_repo(repo="api/../../x"), "repo.repo"),
    "branch with '..'": (_repo(branch="agent/../main"), "repo.branch"),
    "base branch with a space": (_repo(baseBranch="ma in"), "repo.baseBranch"),
    "branch that is the base": (_repo(branch="main"), "repo.branch 'main' is the base branch"),
    "a path climbing out": (_repo(files={"../../../etc/passwd": "x"}), "'../../../etc/passwd'"),
    "an absolute path": (_repo(files={"/etc/passwd": "x"}), "'/etc/passwd'"),
    "a path into .git": (_repo(files={"src/a.py": "", ".git/hooks/pre-commit": "x"}), "'.git/hooks/pre-commit'"),
}


@pytest.mark.parametrize(("body", "named"), BAD_REPOS.values(), ids=BAD_REPOS.keys())
def test_a_bad_repository_name_or_path_is_a_400_naming_it(
    stack: Stack, api: httpx.Client, body: dict, named: str
) -> None:
    head = _log_head(stack)

    response = api.post("/tasks", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert named in response.json()["message"]
    assert "regex" not in response.json()["message"]  # said in words, not as a pattern
    assert _log_head(stack) == head


BAD_REVIEWS = {
    "not json": b"approve",
    "empty": b"",
    "not UTF-8": NOT_UTF8,
    "nested too deep": TOO_DEEP,
    "feedback too long": {"taskId": "550e8400-e29b-41d4-a716-446655440000", "decision": "revise", "feedback": TOO_LONG},
    "unknown decision": {"taskId": "550e8400-e29b-41d4-a716-446655440000", "decision": "maybe"},
    "missing decision": {"taskId": "550e8400-e29b-41d4-a716-446655440000"},
    "taskId a number": {"taskId": 7, "decision": "approve"},
}


@pytest.mark.parametrize("body", BAD_REVIEWS.values(), ids=BAD_REVIEWS.keys())
def test_bad_review_body_is_a_400(stack: Stack, api: httpx.Client, body: object) -> None:
    head = _log_head(stack)
    path = "/tasks/550e8400-e29b-41d4-a716-446655440000/review"
    if isinstance(body, bytes):
        response = api.post(path, content=body, headers={"content-type": "application/json"})
    else:
        response = api.post(path, json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "message"}
    assert _log_head(stack) == head


def test_bad_since_is_a_400(api: httpx.Client) -> None:
    response = api.get("/costs", params={"since": "yesterday"})
    assert response.status_code == 400
    assert set(response.json()) == {"error", "message"}


@pytest.mark.parametrize(
    "task_id",
    [
        "550E8400-E29B-41D4-A716-446655440000",
        "urn:uuid:550e8400-e29b-41d4-a716-446655440000",
        "{550e8400-e29b-41d4-a716-446655440000}",
        "550e8400e29b41d4a716446655440000",
        "550e8400-e29b-41d4-a716-44665544000_",
    ],
)
def test_only_the_canonical_task_id_is_a_task_id(api: httpx.Client, task_id: str) -> None:
    assert api.get(f"/tasks/{task_id}").status_code == 404
    review = api.post(f"/tasks/{task_id}/review", json={"taskId": task_id, "decision": "approve"})
    assert review.status_code == 404
    assert set(review.json()) == {"error", "message"}


def test_a_body_larger_than_the_limit_is_a_413(stack: Stack, api: httpx.Client) -> None:
    head = _log_head(stack)
    huge = task_request()
    huge["repo"]["files"] = {"big.txt": "x" * (7 * 1024 * 1024)}
    response = api.post("/tasks", json={"tasks": [huge]})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert _log_head(stack) == head


CONFIG = "/api/v1/workspaces/default/orchestration/config"
BAD_PATCHES = {
    "empty": b"",
    "not UTF-8": NOT_UTF8,
    "nested too deep": TOO_DEEP,
    "larger than a config may be": b'{"note": "' + b"x" * 70_000 + b'"}',
}


@pytest.mark.parametrize("body", BAD_PATCHES.values(), ids=BAD_PATCHES.keys())
def test_a_bad_config_patch_is_a_400_and_changes_nothing(stack: Stack, api: httpx.Client, body: bytes) -> None:
    head, config = _log_head(stack), api.get(CONFIG).json()

    response = api.patch(CONFIG, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "message"}
    assert api.get(CONFIG).json() == config
    assert _log_head(stack) == head


BAD_ANSWERS = {
    "empty": b"",
    "not UTF-8": b'{"answers": [["\xe9"]]}',
    "nested too deep": b'{"answers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "an answer too long": msgspec.json.encode({"answers": [[TOO_LONG]]}),
    "more picks than a question has options": msgspec.json.encode({"answers": [["Hi"] * 1000]}),
}


@pytest.mark.parametrize("body", BAD_ANSWERS.values(), ids=BAD_ANSWERS.keys())
def test_a_bad_answer_is_a_400_and_changes_nothing(stack: Stack, api: httpx.Client, body: bytes) -> None:
    head = _log_head(stack)
    path = "/api/v1/workspaces/default/orchestration/questions/que_0123456789abcdef/answer"

    response = api.post(path, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "message"}
    assert _log_head(stack) == head


def test_a_bad_admin_body_is_a_400(stack: Stack) -> None:
    admin = {"Authorization": f"Bearer {stack.admin_token}", "content-type": "application/json"}
    for body in (b"", NOT_UTF8, TOO_DEEP):
        response = httpx.post(f"{stack.gateway_url}/admin/workspaces", content=body, headers=admin, timeout=30)
        assert response.status_code == 400, response.text
        assert set(response.json()) == {"error", "message"}
