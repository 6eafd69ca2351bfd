"""`GET /api/startup/check` through HTTP on the real stack: each dependency and setting with ok,
missing or error and how to fix it, never a value; it needs a key; and a setting taken away (the
gateway restarted without it) is named as missing, with the whole check failing."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from libs.devstack.stack import SERVICES, Stack
from tests.e2e.helpers import bearer, new_workspace

pytestmark = pytest.mark.e2e


def check(stack: Stack, key: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{stack.gateway_url}/api/startup/check", headers=key, timeout=30)


def by_name(answer: httpx.Response) -> dict[str, dict]:  # type: ignore[type-arg]
    assert answer.status_code == 200, answer.text
    return {item["name"]: item for item in answer.json()["checks"]}


def test_each_dependency_and_setting_is_checked_without_its_value(stack: Stack) -> None:
    key = bearer(new_workspace(stack, "startup")["apiKey"])
    answer = check(stack, key)
    items = by_name(answer)
    assert len(items) == len(answer.json()["checks"]), "each item once"

    for name in ("database", "nats", *(f"service:{s}" for s in SERVICES if s != "gateway")):
        assert items[name]["status"] == "ok", items[name]
    for name in ("SECRETS_KEY", "SESSION_SECRET", "GITHUB_APP_ID", "GITHUB_APP_PRIVATE_KEY", "GITHUB_CLIENT_SECRET"):
        assert (items[name]["status"], items[name]["kind"]) == ("ok", "setting"), items[name]
        assert "fix" not in items[name]
    # The stack's providers are the local model server's, by keys in the environment.
    assert items["ANTHROPIC_API_KEY"]["status"] == "ok"
    assert items["ANTHROPIC_API_KEY"]["detail"] == "ANTHROPIC_API_KEY is set in the environment"
    # A new workspace has no Fly settings: said so, with how to set them (not required).
    assert items["fly"]["status"] == "missing" and "PUT /api/config/fly" in items["fly"]["fix"]
    assert items["fly"]["required"] is False
    webhook = items["GITHUB_WEBHOOK_SECRET"]
    assert webhook["status"] in ("ok", "missing") and webhook["required"] is True
    for secret in (stack.secrets_key, stack.session_secret, stack.admin_token):
        assert secret not in answer.text
    assert check(stack, {}).status_code == 401


@pytest.fixture
def gateway_without_secrets_key(stack: Stack) -> Iterator[None]:
    # An empty value is an unset one; the stack's own gateway comes back afterwards.
    stack.services["gateway"].stop()
    try:
        stack.restart_service("gateway", {"SECRETS_KEY": "", "GITHUB_WEBHOOK_SECRET": "a-webhook-secret"})
        yield
    finally:
        stack.services["gateway"].stop()
        stack.restart_service("gateway")


def test_a_missing_setting_is_named_with_how_to_fix_it(stack: Stack, gateway_without_secrets_key: None) -> None:
    key = bearer(new_workspace(stack, "startup")["apiKey"])
    answer = check(stack, key)
    items = by_name(answer)

    assert items["SECRETS_KEY"]["status"] == "missing"
    assert "32 random bytes in base64" in items["SECRETS_KEY"]["fix"]
    assert items["GITHUB_WEBHOOK_SECRET"]["status"] == "ok"
    assert "a-webhook-secret" not in answer.text
    assert answer.json()["status"] == "missing"
