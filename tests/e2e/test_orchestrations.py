"""Spec 004's orchestration definitions over HTTP: the list, one definition, an unknown id, and
the key every route needs."""

from __future__ import annotations

import httpx
import jsonschema
import pytest

from libs.devstack.stack import Stack
from tests.e2e.helpers import bearer, new_workspace

pytestmark = pytest.mark.e2e

PATH = "/api/v1/orchestrations"


def test_the_list_shows_the_shipped_definitions_as_the_spec_does(stack: Stack) -> None:
    response = httpx.get(stack.gateway_url + PATH, headers=stack.auth, timeout=10)

    assert response.status_code == 200, response.text
    listed = {o["id"]: o for o in response.json()}
    assert listed["orch-research-report"] == {
        "id": "orch-research-report",
        "name": "Research → Report",
        "description": "Research a topic and generate a report",
        "steps": 5,
    }
    assert listed["orch-code-change"]["steps"] == 4


def test_a_definition_in_full_with_its_digest(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}{PATH}/orch-research-report", headers=stack.auth, timeout=10)

    assert response.status_code == 200, response.text
    found = response.json()
    assert found["id"] == "orch-research-report" and found["digest"].startswith("sha256:")
    assert next(iter(found["state_schema"])) == "query"
    assert [(s["id"], s["type"]) for s in found["steps"]] == [
        ("step-research", "agent"),
        ("step-report", "agent"),
        ("step-approve", "human"),
        ("step-revise", "condition"),
        ("step-finalize", "agent"),
    ]
    approve = found["steps"][2]
    assert [(f["name"], f["type"], f["label"], f["required"]) for f in approve["fields"]] == [
        ("decision", "select", "Decision", True),
        ("notes", "text", "Editor notes", False),
    ]
    assert approve["fields"][0]["options"] == ["approve", "reject"]
    research = found["steps"][0]
    assert research["output"] == "research_results" and "{{ query }}" in research["prompt"]


def test_every_workspace_sees_the_same_definitions(stack: Stack) -> None:
    other = new_workspace(stack, "orchestrations")
    mine = httpx.get(stack.gateway_url + PATH, headers=stack.auth, timeout=10).json()
    theirs = httpx.get(stack.gateway_url + PATH, headers=bearer(other["apiKey"]), timeout=10).json()

    assert mine == theirs


def test_an_unknown_definition_is_a_404(stack: Stack) -> None:
    response = httpx.get(f"{stack.gateway_url}{PATH}/orch-nothing", headers=stack.auth, timeout=10)

    assert response.status_code == 404
    assert response.json() == {"error": "Not found", "message": "orchestration orch-nothing not found"}


def test_both_routes_need_a_valid_key(stack: Stack) -> None:
    unknown = bearer("ak_0123456789abcdef_" + "x" * 43)
    for path in (PATH, f"{PATH}/orch-research-report"):
        for headers in ({}, unknown):
            response = httpx.get(stack.gateway_url + path, headers=headers, timeout=10)
            assert response.status_code == 401, (path, response.text)
            assert response.json()["error"] == "unauthorized"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_every_shipped_definition_is_what_the_document_says(stack: Stack) -> None:
    """The conformance run cannot guess a definition's id: each one is checked here."""
    document = httpx.get(f"{stack.gateway_url}/schema/openapi.json", timeout=10).json()
    schema = {"$ref": "#/components/schemas/OrchestrationDetail", "components": document["components"]}
    for summary in httpx.get(stack.gateway_url + PATH, headers=stack.auth, timeout=10).json():
        found = httpx.get(f"{stack.gateway_url}{PATH}/{summary['id']}", headers=stack.auth, timeout=10).json()
        jsonschema.validate(found, schema, cls=jsonschema.Draft202012Validator)
        assert len(found["steps"]) == summary["steps"]
