from __future__ import annotations

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide

from app.core.errors import PayloadTooLarge
from app.settings import Settings
from app.webhooks.dependencies import provide_webhook_service
from app.webhooks.schemas import WebhookAck
from app.webhooks.service import WebhookService


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["Webhooks"]
    dependencies = {"webhook_service": Provide(provide_webhook_service, sync_to_thread=False)}

    @post("/waha", status_code=200, operation_id="WahaWebhook", request_max_body_size=None)
    async def waha(
        self, request: Request, settings: NamedDependency[Settings], webhook_service: NamedDependency[WebhookService]
    ) -> WebhookAck:
        """Signed WAHA events (X-Webhook-Hmac: hex HMAC-SHA512 of the raw body)."""
        limit = settings.webhook_max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
        status = await webhook_service.receive(bytes(body), request.headers.get("x-webhook-hmac"))
        return WebhookAck(status=status)
