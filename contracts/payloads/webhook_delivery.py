"""The payloads of a WebhookDelivery's events (owner: the gateway): `webhook_delivery.<event>` on
the wire. A delivery GitHub sent and the gateway accepted as a command: only what the intake needs
to act on it, never the delivery's whole body."""

from __future__ import annotations

import msgspec

from contracts.payloads.shapes import Payload


class WebhookDeliveryReceived(Payload, frozen=True, kw_only=True):
    delivery_id: str  # GitHub's `X-GitHub-Delivery`
    installation_id: int
    owner: str
    repo: str
    issue_number: int
    issue_title: str
    issue_body: str  # at most `MAX_ISSUE_BODY` characters: an event must fit on the bus
    comment_id: int
    commenter: str  # the comment's author's login
    agent_type: str  # the command's, one of spec 000's agent types
    description: str  # the command's text after the agent type


PAYLOADS: dict[str, type[msgspec.Struct]] = {"webhook_delivery.received": WebhookDeliveryReceived}
