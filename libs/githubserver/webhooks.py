"""Webhook deliveries as GitHub makes them: the event's JSON, signed with HMAC-SHA256 of the raw
body (`X-Hub-Signature-256: sha256=<hex>`, and the older SHA-1 `X-Hub-Signature`), named by
`X-GitHub-Event` and `X-GitHub-Delivery`, POSTed by "GitHub-Hookshot"."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

import httpx
import msgspec

from libs.githubserver import app_bodies, app_render, bodies
from libs.githubserver.common import GitHubError, not_found
from libs.githubserver.render import Renderer
from libs.githubserver.state import Comment, Hosting, now

TIMEOUT_S = 10.0  # GitHub gives a receiver ten seconds


def signature_256(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_1(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def installation_node_id(installation_id: int) -> str:
    # GitHub's (legacy) global id of an installation, as its webhooks carry it.
    return base64.b64encode(f"023:IntegrationInstallation{installation_id}".encode()).decode()


def issue_comment(render: Renderer, hosting: Hosting, asked: app_bodies.NewDelivery) -> bytes:
    """An `issue_comment` event's body; a comment `created` is recorded on its issue too."""
    if not (asked.owner and asked.repo and asked.issue and asked.body and asked.sender):
        raise GitHubError(422, "an issue_comment needs owner, repo, issue, body and sender (or a payload)")
    repo = hosting.repositories.get((asked.owner.lower(), asked.repo.lower()))
    if repo is None:
        raise not_found()
    if asked.action == "created":
        issue, comment = repo.comment(asked.issue, asked.body, asked.sender, "User", hosting.next_id())
    else:
        issue, written = repo.issue(asked.issue), now()
        comment = Comment(hosting.next_id(), asked.body, asked.sender, "User", written, written)
    accounts = hosting.accounts
    installation = accounts.installation_for(repo.owner, repo.name)
    owner = accounts.account(repo.owner)
    event = app_bodies.IssueCommentEvent(
        action=asked.action,
        issue=app_render.issue(render, repo, issue),
        comment=app_render.comment(render, repo, issue, comment),
        repository=render.repository(repo, bodies.Repository),
        sender=render.user(asked.sender),
        installation=app_bodies.InstallationLite(installation.id, installation_node_id(installation.id))
        if installation
        else None,
        organization=app_render.organization(render, owner) if owner and owner.type == "Organization" else None,
    )
    return msgspec.json.encode(event)


async def deliver(hosting: Hosting, asked: app_bodies.NewDelivery, body: bytes) -> app_bodies.Delivered:
    secret = asked.secret or hosting.accounts.app.webhook_secret
    if not secret:
        raise GitHubError(
            422, "no webhook secret: give `secret`, or start the server with GITHUB_SERVER_WEBHOOK_SECRET"
        )
    delivery = asked.delivery or str(uuid.uuid4())
    signature = asked.signature if asked.signature is not None else signature_256(secret, body)
    app = hosting.accounts.app
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/local",
        "X-GitHub-Event": asked.event,
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Hook-ID": str(app.id),
        "X-GitHub-Hook-Installation-Target-Type": "integration",
        "X-GitHub-Hook-Installation-Target-ID": str(app.id),
        "X-Hub-Signature": signature_1(secret, body),
        "X-Hub-Signature-256": signature,
    }
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            answered = await client.post(asked.url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise GitHubError(502, f"the delivery to {asked.url} failed: {type(exc).__name__}: {exc}") from None
    return app_bodies.Delivered(
        delivery=delivery, event=asked.event, signature=signature, status=answered.status_code, response=answered.text
    )
