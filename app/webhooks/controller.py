from __future__ import annotations

from uuid import UUID

from litestar import Controller, Request, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

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
        """Signed WAHA events (X-Webhook-Hmac: hex HMAC-SHA512 of the raw body under the platform
        key), for sessions configured before per-tenant routes."""
        body = await _read_body(request, settings.webhook_max_body_bytes)
        status = await webhook_service.receive(body, request.headers.get("x-webhook-hmac"))
        return WebhookAck(status=status)

    @post("/waha/{tenant_id:uuid}", status_code=200, operation_id="WahaTenantWebhook", request_max_body_size=None)
    async def waha_tenant(
        self,
        request: Request,
        tenant_id: FromPath[UUID],  # the contract's {user_id}; that name is the app's authenticated-user dependency
        settings: NamedDependency[Settings],
        webhook_service: NamedDependency[WebhookService],
    ) -> WebhookAck:
        """One tenant's WAHA events, signed with that tenant's derived webhook key; they can only
        change that tenant's chips."""
        body = await _read_body(request, settings.webhook_max_body_bytes)
        status = await webhook_service.receive(body, request.headers.get("x-webhook-hmac"), tenant=tenant_id)
        return WebhookAck(status=status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"Webhook body over {limit} bytes.")
    return bytes(body)
