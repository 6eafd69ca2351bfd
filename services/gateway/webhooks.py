"""`POST /api/webhooks/github`: GitHub's deliveries of the App's events.

The signature is checked on the raw body before anything reads it. A delivery is answered in
milliseconds (GitHub waits ten seconds at most): an `issue_comment` that is a command on a
repository of a linked installation is recorded as a `WebhookDelivery`, whose event the intake
service acts on; anything else is answered `ignored` with the reason, and changes nothing.
The delivery's id makes the record's id, so a redelivery, however much later, conflicts with the
first and is answered `duplicate`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from eventsourcing.persistence import IntegrityError
from litestar import Request, Response, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, Operation, Parameter, RequestBody, Schema

from contracts.github_webhooks import MAX_ISSUE_BODY, IssueCommentDelivery, WebhookAnswer
from contracts.payloads.webhook_delivery import WebhookDeliveryReceived
from libs.domain.github_installation import GitHubInstallation, github_installation_id
from libs.domain.webhook_delivery import WebhookDelivery, webhook_delivery_id
from libs.domain.workspace import Workspace, workspace_aggregate_id
from libs.web.bodies import decode_body
from libs.web.errors import ApiError
from libs.web.openapi import ERRORS, register
from services.gateway.signin_settings import require
from services.gateway.state import GatewayState, gateway_state
from services.gateway.webhook_commands import command_of, prefix_of, repository_allowed, signature_valid

# GitHub's delivery ids are GUIDs; a longer one is not GitHub's.
MAX_DELIVERY_ID = 100


def _answer(status_code: int, answer: WebhookAnswer) -> Response[WebhookAnswer]:
    return Response(answer, status_code=status_code)


def _ignored(reason: str) -> Response[WebhookAnswer]:
    return _answer(202, WebhookAnswer(status="ignored", reason=reason))


def _duplicate() -> Response[WebhookAnswer]:
    return _answer(200, WebhookAnswer(status="duplicate"))


def _header(request: Request[Any, Any, Any], name: str) -> str:
    value = request.headers.get(name, "").strip()
    if not value or len(value) > MAX_DELIVERY_ID:
        raise ApiError(400, "invalid_request", f"the {name} header is missing or not GitHub's")
    return value


@post(
    "/api/webhooks/github",
    status_code=202,
    opt={
        "public": True,  # GitHub authenticates by the signature, not by a key
        ERRORS: {
            400: "The body is not a JSON object, lacks what its event needs, or X-GitHub-Event or "
            "X-GitHub-Delivery is missing.",
            401: "X-Hub-Signature-256 is missing or is not the HMAC-SHA256 of the body with the webhook secret.",
            503: "GITHUB_WEBHOOK_SECRET is not set on this server, or the database is away.",
        },
    },
    responses={200: ResponseSpec(WebhookAnswer, description="A delivery seen before: `duplicate`, nothing done.")},
    description="The GitHub App's webhook (its Webhook URL). `accepted`: a command comment, queued for the "
    "intake; `ignored`: nothing done, `reason` says why.",
)
async def github_webhook(request: Request[Any, Any, Any]) -> Response[WebhookAnswer]:
    """A GitHub delivery: 202 `accepted` (a command, queued for the intake) or `ignored` (with
    the reason), 200 `duplicate` (a delivery seen before)."""
    state = gateway_state(request)
    require(state.settings, ("GITHUB_WEBHOOK_SECRET",), "GitHub webhooks")
    secret = state.settings.github_webhook_secret or ""
    raw = await request.body()
    if not signature_valid(secret, raw, request.headers.get("X-Hub-Signature-256")):
        raise ApiError(401, "unauthorized", "X-Hub-Signature-256 is missing or does not match the body")
    event, delivery_id = _header(request, "X-GitHub-Event"), _header(request, "X-GitHub-Delivery")
    body = decode_body(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "the body is not a JSON object")
    if await _load(state, webhook_delivery_id(delivery_id)) is not None:
        return _duplicate()
    if event == "ping":
        return _ignored("ping: the webhook reaches this server; nothing to do")
    if event != "issue_comment":
        return _ignored(f"the {event!r} event is not acted on: only issue_comment")
    try:
        delivery = msgspec.convert(body, IssueCommentDelivery)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "invalid_request", f"not an issue_comment body: {exc}") from None
    return await _received(state, delivery_id, delivery)


async def _received(state: GatewayState, delivery_id: str, delivery: IssueCommentDelivery) -> Response[WebhookAnswer]:
    if delivery.action != "created":
        return _ignored(f"the issue_comment action {delivery.action!r} is not acted on: only created")
    if delivery.comment.user.type == "Bot":
        return _ignored("a bot's comment is not a command")  # the App's own replies among them
    if delivery.installation is None:
        return _ignored("the delivery names no installation of the App")
    installation = await _load(state, github_installation_id(delivery.installation.id))
    if not isinstance(installation, GitHubInstallation):
        return _ignored(f"installation {delivery.installation.id} is not linked to a workspace")
    workspace = await _load(state, workspace_aggregate_id(installation.workspace_id))
    config = workspace.config if isinstance(workspace, Workspace) else {}
    owner, repo = delivery.repository.owner.login, delivery.repository.name
    command = command_of(delivery.comment.body, prefix_of(config))
    if isinstance(command, str):
        return _ignored(command)
    if not repository_allowed(config, owner, repo):
        return _ignored(f"{owner}/{repo} is not among the workspace's allowedRepositories")
    agent_type, description = command
    received = WebhookDeliveryReceived(
        delivery_id=delivery_id,
        installation_id=delivery.installation.id,
        owner=owner,
        repo=repo,
        issue_number=delivery.issue.number,
        issue_title=delivery.issue.title,
        issue_body=(delivery.issue.body or "")[:MAX_ISSUE_BODY],
        comment_id=delivery.comment.id,
        commenter=delivery.comment.user.login,
        agent_type=agent_type,
        description=description,
    )
    try:
        await asyncio.to_thread(state.store.save, [WebhookDelivery.receive(installation.workspace_id, received)])
    except IntegrityError:
        return _duplicate()  # the same delivery, at the same moment, through another replica
    return _answer(202, WebhookAnswer(status="accepted", delivery_id=delivery_id))


async def _load(state: GatewayState, aggregate_id: Any) -> Any:
    return await asyncio.to_thread(state.store.load, aggregate_id)


HEADERS = {
    "X-Hub-Signature-256": "`sha256=` and the hex HMAC-SHA256 of the raw body with the webhook secret.",
    "X-GitHub-Event": "The event's name: only `issue_comment` is acted on.",
    "X-GitHub-Delivery": "The delivery's id (a GUID): the same id again is a duplicate.",
}


def document(openapi: OpenAPI) -> None:
    """The route reads its body raw (the signature is over the bytes), so Litestar sees none: the
    body GitHub sends, as far as it is read, and the headers it signs and names it with."""
    item = (openapi.paths or {})["/api/webhooks/github"]
    operation = item.post
    assert isinstance(operation, Operation)
    body = register(openapi, IssueCommentDelivery)
    operation.request_body = RequestBody(
        content={"application/json": OpenAPIMediaType(schema=body)},
        required=True,
        description="GitHub's event body (`issue_comment`; other events are acknowledged and ignored).",
    )
    operation.parameters = [
        Parameter(name=name, param_in="header", required=True, description=why, schema=Schema(type="string"))  # type: ignore[arg-type]
        for name, why in HEADERS.items()
    ]


ROUTES = [github_webhook]
