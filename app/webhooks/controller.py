from __future__ import annotations

from uuid import UUID

import msgspec
from litestar import Controller, MediaType, Request, Response, post
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
    ) -> Response[WebhookAck]:
        """Signed WAHA events (X-Webhook-Hmac: hex HMAC-SHA512 of the raw body under the platform
        key), for sessions configured before per-tenant routes."""
        body = await _read_body(request, settings.webhook_max_body_bytes)
        status = await webhook_service.receive(body, request.headers.get("x-webhook-hmac"))
        return _ack(status)

    @post("/waha/{tenant_id:uuid}", status_code=200, operation_id="WahaTenantWebhook", request_max_body_size=None)
    async def waha_tenant(
        self,
        request: Request,
        tenant_id: FromPath[UUID],  # the contract's {user_id}; that name is the app's authenticated-user dependency
        settings: NamedDependency[Settings],
        webhook_service: NamedDependency[WebhookService],
    ) -> Response[WebhookAck]:
        """One tenant's WAHA events, signed with that tenant's derived webhook key; they can only
        change that tenant's chips."""
        body = await _read_body(request, settings.webhook_max_body_bytes)
        status = await webhook_service.receive(body, request.headers.get("x-webhook-hmac"), tenant=tenant_id)
        return _ack(status)


# The three possible answers, encoded once: the hottest route skips serializing a constant body.
_ACKS = {status: msgspec.json.encode(WebhookAck(status=status)) for status in ("ok", "duplicate", "ignored")}


def _ack(status: str) -> Response[WebhookAck]:
    body = _ACKS.get(status) or msgspec.json.encode(WebhookAck(status=status))
    return Response(body, media_type=MediaType.JSON)  # type: ignore[arg-type]  # pre-encoded WebhookAck


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
