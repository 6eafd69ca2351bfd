"""What an operator scrapes: every service's /metrics, and the HTTP edge's request metrics by
route template (never an id: /metrics is open to any scraper)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from libs.devstack.stack import SERVICES, Stack
from tests.e2e.helpers import bearer, debug_dump, in_review_and_charged, new_workspace, submit, task_request, wait_for

pytestmark = pytest.mark.e2e

REQUESTS = "orchestrator_http_requests"  # the counter's family name (its samples end in _total)
DURATIONS = "orchestrator_http_request_duration_seconds"


def scrape(stack: Stack, service: str) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """The service's /metrics text, and its samples by (name, labels)."""
    response = httpx.get(f"http://127.0.0.1:{stack.ports.services[service]}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    return response.text, samples


def requests_counted(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], app: str, method: str, path: str, status: int
) -> float:
    labels = {"app_name": app, "method": method, "path": path, "status_code": str(status)}
    return samples.get((REQUESTS + "_total", frozenset(labels.items())), 0.0)


def test_the_gateway_counts_each_request_by_route_template_and_status(stack: Stack) -> None:
    unknown = str(uuid.uuid4())
    _, before = scrape(stack, "gateway")

    with httpx.Client(base_url=stack.gateway_url, timeout=30) as api:
        assert api.get(f"/tasks/{unknown}", headers=stack.auth).status_code == 404
        assert api.get(f"/tasks/{unknown}").status_code == 401  # no key
        assert api.post("/tasks", json={"tasks": []}, headers=stack.auth).status_code == 400
        [task_id] = submit(httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth), task_request())

    text, after = scrape(stack, "gateway")
    for method, path, status in (
        ("GET", "/tasks/{task_id}", 404),
        ("GET", "/tasks/{task_id}", 401),
        ("POST", "/tasks", 400),
        ("POST", "/tasks", 201),
    ):
        counted = requests_counted(after, "gateway", method, path, status)
        assert counted - requests_counted(before, "gateway", method, path, status) == 1, (method, path, status)
    timed = (
        DURATIONS + "_count",
        frozenset({"app_name": "gateway", "method": "POST", "path": "/tasks", "status_code": "201"}.items()),
    )
    assert after[timed] >= 1
    # The ids asked for, and the key that asked, are nowhere in what any scraper can read.
    for secret in (unknown, task_id, stack.api_key):
        assert secret not in text


def test_the_stream_counts_its_routes_without_the_workspace_asked_for(stack: Stack) -> None:
    workspace = new_workspace(stack, "metrics")
    debug_dump(stack, workspace["workspaceId"], bearer(workspace["apiKey"]))

    text, samples = scrape(stack, "stream")

    dump_route = "/api/v1/workspaces/{workspaceID}/orchestration/debug-dump"
    assert requests_counted(samples, "stream", "GET", dump_route, 200) >= 1
    assert workspace["workspaceId"] not in text
    assert workspace["apiKey"] not in text


def test_every_service_exports_what_it_did_for_a_task(stack: Stack) -> None:
    with httpx.Client(base_url=stack.gateway_url, timeout=30, headers=stack.auth) as api:
        [task_id] = submit(api, task_request())
        wait_for(api, task_id, in_review_and_charged)

    scraped = {service: scrape(stack, service)[1] for service in SERVICES}

    def total(service: str, name: str, **labels: str) -> float:
        return sum(
            value
            for (sample, sample_labels), value in scraped[service].items()
            if sample == name and set(labels.items()) <= sample_labels
        )

    assert total("stream", "orchestrator_events_relayed_total") > 0
    assert total("stream", "orchestrator_projector_position") > 0
    for consumer in ("planner", "executor", "review", "cost-ledger"):
        assert total(consumer, "orchestrator_events_handled_total", consumer=consumer) > 0, consumer
    assert total("executor", "orchestrator_llm_calls_total", outcome="ok") > 0
    assert total("planner", "orchestrator_commands_total") > 0
