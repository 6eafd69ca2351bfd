"""One base URL, two ways: every route the stream service and the runtime serve is reached through
the gateway's edge (`./just up`, compose, the tests' stack) and through the Kubernetes ingress,
and neither takes one of the gateway's own routes. A route added to a service and not to the
edge and the ingress fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from litestar import Litestar

from libs.config import Settings
from services.gateway.app import create_app as gateway_app
from services.runtime.app import create_app as runtime_app
from services.stream.app import create_app as stream_app

INGRESS = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "ingress.yaml"
UNUSED = "postgresql://unused"
# Every service's own: not part of the public API, and asked of each service directly.
OPERATIONS = {"/health", "/ready", "/metrics"}


def concrete(template: str) -> str:
    """A path the template matches: a number for an `int` parameter, two segments for a `path`
    one, a plain word for any other."""
    words = {"int": "1", "path": "p1/p2"}
    return re.sub(r"\{[^}:]+(?::([^}]+))?\}", lambda m: words.get(m.group(1) or "", "x1"), template)


def public_routes(app: Litestar) -> list[tuple[str, str]]:
    """(method, a concrete path) of each route the app serves and documents or answers publicly."""
    found = []
    for route in app.routes:
        if route.path in OPERATIONS or route.path.startswith("/schema"):
            continue
        for method in sorted(getattr(route, "methods", {"WEBSOCKET"}) - {"OPTIONS", "HEAD"}):
            found.append((method, concrete(route.path)))
    return found


def ingress_backend(path: str) -> str:
    """The service ingress-nginx sends `path` to: with use-regex on the host, every path is a
    case-insensitive regex anchored at the start, and the longest path that matches wins."""
    candidates: list[tuple[str, str]] = []
    for document in yaml.safe_load_all(INGRESS.read_text()):
        for rule in document["spec"]["rules"]:
            for entry in rule["http"]["paths"]:
                if re.match(entry["path"], path, re.IGNORECASE):
                    candidates.append((entry["path"], entry["backend"]["service"]["name"]))
    assert candidates, f"the ingress routes {path} nowhere"
    return max(candidates, key=lambda found: len(found[0]))[1]


@pytest.fixture(scope="module")
def gateway() -> Litestar:
    return gateway_app(
        Settings(service="gateway", database_url=UNUSED, stream_url="http://stream", runtime_url="http://runtime")
    )


def handler_for(app: Litestar, method: str, path: str) -> Any:
    scope_method = None if method == "WEBSOCKET" else method
    return app.asgi_router.handle_routing(path=path, method=scope_method)[1]


@pytest.mark.parametrize("service, create", [("stream", stream_app), ("runtime", runtime_app)])
def test_each_route_of_a_service_is_forwarded_by_the_edge_and_routed_by_the_ingress(
    gateway: Litestar, service: str, create: Any
) -> None:
    routes = public_routes(create(Settings(service=service, database_url=UNUSED)))
    assert routes

    for method, path in routes:
        assert handler_for(gateway, method, path).name == f"edge-{service}", (method, path)
        assert ingress_backend(path) == service, (method, path)


def test_the_gateways_own_routes_stay_the_gateways(gateway: Litestar) -> None:
    own = public_routes(gateway_app(Settings(service="gateway", database_url=UNUSED)))
    assert own

    for method, path in own:
        assert not str(handler_for(gateway, method, path).name).startswith("edge-"), (method, path)
        assert ingress_backend(path) == "gateway", (method, path)


def test_without_the_services_urls_the_gateway_serves_only_its_own(gateway: Litestar) -> None:
    alone = gateway_app(Settings(service="gateway", database_url=UNUSED))

    handlers = [h for r in alone.routes for h in getattr(r, "route_handlers", [getattr(r, "route_handler", None)])]
    names = [str(h.name) for h in handlers]
    assert names and not [n for n in names if n.startswith("edge-")]
    # The forwarded routes are the services' own to document: the gateway's document is the same.
    assert gateway.openapi_schema.to_schema() == alone.openapi_schema.to_schema()
