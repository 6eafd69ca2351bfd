"""WebhookDelivery: a GitHub webhook delivery the gateway accepted as a command; owned by the
gateway.

Its id derives from GitHub's delivery id (`X-GitHub-Delivery`), so its creation is the durable
dedupe: a redelivery, however much later, conflicts with the first and changes nothing.
"""

from __future__ import annotations

from uuid import UUID

from contracts.payloads.webhook_delivery import WebhookDeliveryReceived
from libs.domain.base import WorkspaceAggregate, derived_id


def webhook_delivery_id(delivery_id: str) -> UUID:
    return derived_id("webhook_delivery", delivery_id)


class WebhookDelivery(WorkspaceAggregate):
    class Received(WorkspaceAggregate.Created):
        payload: WebhookDeliveryReceived

    def __init__(self, workspace_id: str, payload: WebhookDeliveryReceived) -> None:
        self.workspace_id = workspace_id
        self.delivery_id = payload.delivery_id

    @classmethod
    def receive(cls, workspace_id: str, received: WebhookDeliveryReceived) -> WebhookDelivery:
        return cls._create(
            cls.Received, id=webhook_delivery_id(received.delivery_id), workspace_id=workspace_id, payload=received
        )
