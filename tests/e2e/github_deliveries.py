"""What a test of the GitHub intake sets up on the local GitHub server: an organization with the
App installed and linked to a workspace, an issue, and webhook deliveries signed as GitHub signs
them, sent to the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from libs.devstack.stack import Stack
from tests.e2e.github_browser import github_org, github_user, install_app, unique
from tests.e2e.helpers import bearer


@dataclass(frozen=True)
class Repository:
    owner: str
    repo: str
    installation: int
    issue: int


def linked_repository(stack: Stack, workspace: dict[str, str] | None, title: str = "Validate input") -> Repository:
    """A repository of an organization whose installation of the App is linked to `workspace`
    (None: linked to none), with an issue open on it."""
    org, repo = unique("org"), unique("shop")
    github_org(stack, org)
    installation = install_app(stack, org)
    if workspace is not None:
        linked = httpx.get(
            f"{stack.gateway_url}/api/auth/github/installed",
            params={"installation_id": installation},
            headers=bearer(workspace["apiKey"]),
            timeout=30,
        )
        assert linked.status_code == 200, linked.text
    issue = stack.local_github(
        "/_issues", {"owner": org, "repo": repo, "title": title, "body": "The signup form takes any email."}
    )
    assert issue is not None
    return Repository(org, repo, installation, int(issue["number"]))  # type: ignore[call-overload]


def commenter(stack: Stack, where: Repository, role: str = "write") -> str:
    """A GitHub user with `role` on the repository."""
    login = unique("dev")
    github_user(stack, login)
    stack.local_github("/_collaborators", {"owner": where.owner, "repo": where.repo, "user": login, "role": role})
    return login


def deliver(stack: Stack, **asked: Any) -> dict[str, Any]:
    """The local GitHub server's delivery to the gateway's webhook (`POST /_webhooks`): what it
    sent (`delivery`, `signature`) and what the gateway answered (`status`, `response`)."""
    answer = stack.local_github("/_webhooks", {"url": f"{stack.gateway_url}/api/webhooks/github", **asked})
    assert answer is not None
    return answer


def comment(stack: Stack, where: Repository, sender: str, body: str, **more: Any) -> dict[str, Any]:
    return deliver(stack, owner=where.owner, repo=where.repo, issue=where.issue, body=body, sender=sender, **more)
