"""What makes a GitHub delivery a command: its signature (GitHub's documented example vector),
the comment's words, and the repositories a workspace allows."""

from __future__ import annotations

import pytest

from services.gateway.webhook_commands import command_of, prefix_of, repository_allowed, signature_valid

# From GitHub's "Validating webhook deliveries".
SECRET = "It's a Secret to Everybody"
PAYLOAD = b"Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def test_githubs_example_signature_is_valid() -> None:
    assert signature_valid(SECRET, PAYLOAD, SIGNATURE)


@pytest.mark.parametrize(
    ("secret", "payload", "header"),
    [
        ("It's a secret to everybody", PAYLOAD, SIGNATURE),  # another secret
        (SECRET, b"Hello, World!\n", SIGNATURE),  # another body
        (SECRET, PAYLOAD, SIGNATURE.removeprefix("sha256=")),  # no algorithm
        (SECRET, PAYLOAD, "sha1=" + SIGNATURE.removeprefix("sha256=")),
        (SECRET, PAYLOAD, SIGNATURE[:-1] + "f"),
        (SECRET, PAYLOAD, SIGNATURE.upper()),
        (SECRET, PAYLOAD, ""),
        (SECRET, PAYLOAD, None),
    ],
)
def test_any_other_signature_is_not(secret: str, payload: bytes, header: str | None) -> None:
    assert not signature_valid(secret, payload, header)


def test_a_command_names_an_agent_type_and_a_description() -> None:
    assert command_of("/agent codegen add input validation\nto the form", "/agent") == (
        "codegen",
        "add input validation\nto the form",
    )
    assert command_of("  /bot test cover the parser ", "/bot") == ("test", "cover the parser")


@pytest.mark.parametrize(
    ("comment", "reason"),
    [
        ("looks good to me", "does not start with '/agent'"),
        ("/agentcodegen add it", "does not start with '/agent'"),
        ("please /agent codegen add it", "does not start with '/agent'"),
        ("/agent codegen", "a command is '/agent <agentType> <description>'"),
        ("/agent", "a command is '/agent <agentType> <description>'"),
        ("/agent painter draw a cat", "unknown agent type 'painter': one of codegen, test, review"),
    ],
)
def test_a_comment_that_is_no_command_says_why(comment: str, reason: str) -> None:
    found = command_of(comment, "/agent")

    assert isinstance(found, str)
    assert reason in found


def test_the_prefix_is_the_workspaces_or_the_default() -> None:
    assert prefix_of({}) == "/agent"
    assert prefix_of({"commandPrefix": "/bot"}) == "/bot"


def test_allowed_repositories_match_by_name_or_owner_and_no_list_allows_all() -> None:
    config = {"allowedRepositories": ["acme/shop", "tools/*"]}

    assert repository_allowed({}, "anyone", "anything")
    assert repository_allowed(config, "Acme", "Shop")
    assert repository_allowed(config, "tools", "lint")
    assert not repository_allowed(config, "acme", "shop-admin")
    assert not repository_allowed(config, "evil", "shop")
