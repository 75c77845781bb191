"""Provider of the webhook service for the webhook receiver (registered on its controller)."""

from __future__ import annotations

from litestar.di import NamedDependency

from app.container import Container
from app.settings import Settings
from app.webhooks.service import WebhookService


def provide_webhook_service(
    container: NamedDependency[Container], settings: NamedDependency[Settings]
) -> WebhookService:
    # After ``settings`` (which the receiver reads for its body limit): one chain,
    # container → settings → service, resolved in sequence on this hot route, no task group.
    return WebhookService(container)
