from __future__ import annotations

from litestar import Controller, Request, post
from litestar.di import NamedDependency

from app.core.errors import PayloadTooLarge
from app.core.services import Services
from app.webhooks.schemas import WebhookAck
from app.webhooks.service import WebhookService


class WebhooksController(Controller):
    path = "/api/v1/webhooks"
    tags = ["Webhooks"]

    @post("/waha", status_code=200, operation_id="WahaWebhook", request_max_body_size=None)
    async def waha(self, request: Request, services: NamedDependency[Services]) -> WebhookAck:
        """Signed WAHA events (X-Webhook-Hmac: hex HMAC-SHA512 of the raw body)."""
        limit = services.settings.webhook_max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
        status = await WebhookService(services).receive(bytes(body), request.headers.get("x-webhook-hmac"))
        return WebhookAck(status=status)
