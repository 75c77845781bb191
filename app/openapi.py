"""The OpenAPI document and its UI: offline, with auth, errors and words on every operation.

- The Swagger UI's JavaScript and CSS come from the ``swagger-ui-py`` distribution (Swagger UI 5,
  which reads OpenAPI 3.1), served by WHAGO under ``/schema/assets``: the docs work without
  internet access.
- A bearer security scheme (the "Authorize" button) on every route that needs a token; the
  stream token (query) on the event stream; nothing on public routes.
- Every operation documents the contract's error body (``Error``) for the statuses it can answer.
- Summaries and descriptions come from ``OPERATIONS`` (by operation id), or from the handler's
  docstring; a route missing from both keeps a summary made from its operation id and no
  description, which tests/api/test_openapi.py reports.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIType
from litestar.static_files import create_static_files_router

ASSETS_PATH = "/schema/assets"
BEARER_SCHEME = "BearerToken"
STREAM_SCHEME = "StreamToken"

# operation id → (summary, description)
OPERATIONS: dict[str, tuple[str, str]] = {
    "Live": ("Process liveness", "200 while the process runs (no dependency is checked)."),
    "Ready": (
        "Dependency readiness",
        "200 when the database, Redis and the scheduler answer; 503 naming the failing parts otherwise.",
    ),
    "Metrics": ("Prometheus metrics", "Prometheus text format: HTTP series and WHAGO's domain series (README)."),
    "Register": (
        "Create an account",
        "Self-registered users start on plan `free` and are never admins. Rate-limited per client IP; "
        "403 `signup_closed` when sign-up is closed.",
    ),
    "Login": (
        "Log in",
        "Exchange email and password for a bearer token. Repeated failures for one email are refused "
        "with 429 and `Retry-After`.",
    ),
    "Me": ("The caller", "The authenticated user with their plan's chip limit."),
    "StreamToken": (
        "Get a live-event stream token",
        "A short-lived, single-use token for `GET /api/v1/events?token=…` (EventSource cannot send headers).",
    ),
    "ListPlans": ("List plans", "Every plan with the number of live chips it allows. No authentication."),
    "ListChips": ("List my chips", "The caller's chips, newest first, optionally filtered by status."),
    "CreateChip": (
        "Create a chip",
        "Accepted at once (status `provisioning`); the WhatsApp session is prepared in the background. "
        "409 `plan_limit_reached` when the plan is full.",
    ),
    "GetChip": ("Get a chip", "One of the caller's chips; another tenant's id is 404."),
    "RenameChip": ("Rename a chip", "Change the chip's alias."),
    "DeleteChip": (
        "Delete a chip",
        "Teardown runs in the background; the chip leaves listings and stops counting toward the plan once done.",
    ),
    "GetChipQr": (
        "Get the chip's QR code",
        "JSON with a data-URL PNG while the chip is `waiting_qr`; with `Accept: image/png`, the PNG itself.",
    ),
    "RequestPairingCode": (
        "Request a pairing code",
        "Link by phone number instead of a QR scan. Limited to 5 pairing attempts per chip per hour.",
    ),
    "RestartChip": ("Restart a chip's session", "A new pairing attempt; counts toward the hourly pairing limit."),
    "LogoutChip": ("Log a chip out", "Unlink the WhatsApp number; the chip goes `disconnected`."),
    "SendChipMessage": (
        "Send a message",
        "Text, image or file to a number or chat id. `Idempotency-Key` makes retries safe; "
        "409 `chip_not_connected` unless the chip is connected.",
    ),
    "ListChipEvents": ("Chip status history", "The chip's status changes, newest first, with their source."),
    "EventStream": (
        "Live events (server-sent events)",
        "`chip.status`, `chip.qr`, `chip.deleted`, `chip.health` and `message.status` events for the caller's "
        "chips. Authenticate with `?token=` from `POST /api/v1/auth/stream-token`.",
    ),
    "WahaWebhook": (
        "Receive a WAHA event",
        "Called by WAHA only; the body must be signed (`X-Webhook-Hmac`: hex HMAC-SHA512 of the raw body).",
    ),
    "ChangePassword": (
        "Change my password",
        "Needs the current password; every earlier token is revoked and a fresh one is returned.",
    ),
    "Logout": ("Log out", "Revokes the token this request carries, in every API process within 5 s."),
    "ListChipMessages": (
        "List a chip's messages",
        "Outbound messages, newest first, with their WhatsApp delivery status; page with `before`.",
    ),
    "GetChipMessage": ("Get one message", "One outbound message of the chip, with its delivery status."),
    "AdminCreateUser": (
        "Create a user (admin)",
        "Creates a tenant account (works with sign-up closed); never an admin.",
    ),
    "WahaTenantWebhook": (
        "Receive a tenant's WAHA event",
        "Called by a tenant's WAHA only; signed with that tenant's derived key, and an event accepted "
        "here can only change that tenant's chips and messages, whatever its metadata says.",
    ),
    "AdminListUsers": ("List users (admin)", "Every user with their chip count."),
    "AdminUpdateUser": ("Change a user (admin)", "Set plan and admin flag; every change is audited."),
    "AdminListInstances": (
        "List WAHA instances (admin)",
        "Every tenant's instance as last observed; the total is in `X-Total-Count`.",
    ),
    "AdminRestartInstance": ("Restart an instance (admin)", "Restart that tenant's WAHA instance; audited."),
    "AdminRemoveInstance": (
        "Remove an instance (admin)",
        "Stop and remove that tenant's instance; their chips go `disconnected`. Audited.",
    ),
    "AdminListProxies": ("List proxies (admin)", "The proxy pool, never with passwords (`has_password`)."),
    "AdminCreateProxy": ("Add a proxy (admin)", "The password is stored encrypted and never shown again. Audited."),
    "AdminUpdateProxy": (
        "Edit a proxy (admin)",
        "Chips above a lowered limit, or on a disabled proxy, move to another. Audited.",
    ),
    "AdminDeleteProxy": ("Remove a proxy (admin)", "Its chips move to another proxy. Audited."),
    "AdminListChips": ("List chips across tenants (admin)", "Filter by owner and status."),
    "DevScanChip": (
        "Scan the chip's QR (development only)",
        "`whago dev` only: the tenant's emulated WAHA behaves as if the QR was scanned by a phone with "
        "`phone_number` (random when omitted); the chip then connects. 404 outside development.",
    ),
    "AdminListAudit": (
        "List audit entries (admin)",
        "Who changed what: admin changes and security events, newest first, with non-secret before/after "
        "snapshots and the request id. Page with `before=<next_before>`.",
    ),
}

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("validation_error", "Malformed JSON, wrong types, missing fields or bad values (details in `extra`)."),
    401: ("not_authenticated", "No, expired, revoked or forged token."),
    403: ("forbidden", "Authenticated but not allowed (administrators only)."),
    404: ("not_found", "Unknown id, or an id that belongs to another tenant."),
    409: ("conflict", "A domain rule refused the request (see `code`)."),
    413: ("payload_too_large", "Body too large."),
    429: ("rate_limited", "Too many attempts; retry after `Retry-After` seconds."),
    503: ("dependency_unavailable", "A dependency (database, Redis, scheduler, WAHA) is down; nothing changed."),
}

_PUBLIC = {"/api/v1/auth/register", "/api/v1/auth/login", "/api/v1/plans"}
_CONFLICTS = re.compile(r"^/api/v1/(chips|dev/chips|auth/register|admin/users)")
_LIMITED = re.compile(
    r"^/api/v1/(auth/(login|register|password|stream-token)|events|chips/[^/]+/(pairing-code|restart|messages))"
)
# anonymous routes that still answer 401 (wrong password) or 403 (disabled account, sign-up closed)
_CREDENTIALS = {"/api/v1/auth/login"}
_REFUSING = {"/api/v1/auth/login", "/api/v1/auth/register"}


def swagger_assets_dir() -> Path:
    # the swagger-ui-py distribution: only its copy of Swagger UI's dist files is used
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or spec.origin is None:
        raise RuntimeError("swagger-ui-py is not installed: pip install whago's dependencies")
    return Path(spec.origin).resolve().parent / "static"


def render_plugin() -> SwaggerRenderPlugin:
    """Swagger UI at ``/schema`` and ``/schema/swagger``, its assets from WHAGO itself."""
    return SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        path=["/swagger", "/"],
        favicon=f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>",
    )


def assets_router() -> Router:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[swagger_assets_dir()], include_in_schema=False, name="openapi_assets"
    )


def _error_schema() -> Schema:
    return Schema(
        type=OpenAPIType.OBJECT,
        required=["status_code", "detail", "code"],
        properties={
            "status_code": Schema(type=OpenAPIType.INTEGER, description="The HTTP status, repeated."),
            "detail": Schema(type=OpenAPIType.STRING, description="A sentence for people."),
            "code": Schema(type=OpenAPIType.STRING, description="A stable code for programs."),
            "extra": Schema(description="Per-field details of a validation error: [{key, message, source}]."),
        },
        description="Every error response of the API has this body.",
    )


def _error_response(status: int) -> OpenAPIResponse:
    code, description = _ERRORS[status]
    return OpenAPIResponse(
        description=description,
        content={
            "application/json": OpenAPIMediaType(
                schema=Reference(ref="#/components/schemas/Error"),
                example={"status_code": status, "detail": description, "code": code},
            )
        },
    )


def _humanize(operation_id: str) -> str:
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", operation_id).lower()
    return words[:1].upper() + words[1:]


def _statuses(path: str, method: str, operation: Operation, secured: bool) -> list[int]:
    statuses = []
    if operation.parameters or operation.request_body or method in ("post", "patch", "put"):
        statuses.append(400)
    if secured or path.startswith("/api/v1/webhooks") or path in _CREDENTIALS:
        statuses.append(401)
    if path.startswith("/api/v1/admin") or path in _REFUSING:
        statuses.append(403)
    if "{" in path:
        statuses.append(404)
    if method in ("post", "patch", "delete") and _CONFLICTS.match(path):
        statuses.append(409)
    if path.startswith("/api/v1/webhooks"):
        statuses.append(413)
    if _LIMITED.match(path):
        statuses.append(429)
    if path.startswith("/api/") or path == "/health/ready":
        statuses.append(503)
    return statuses


def document(openapi: OpenAPI) -> OpenAPI:
    """Complete the generated document in place (security, errors, summaries); returns it."""
    components = openapi.components if isinstance(openapi.components, Components) else Components()
    openapi.components = components
    components.schemas = {**(components.schemas or {}), "Error": _error_schema()}
    components.security_schemes = {
        **(components.security_schemes or {}),
        BEARER_SCHEME: SecurityScheme(
            type="http", scheme="bearer", bearer_format="JWT", description="`access_token` from login or register."
        ),
        STREAM_SCHEME: SecurityScheme(
            type="apiKey", name="token", security_scheme_in="query", description="From POST /api/v1/auth/stream-token."
        ),
    }
    for path, item in (openapi.paths or {}).items():
        for method in ("get", "post", "put", "patch", "delete"):
            operation: Operation | None = getattr(item, method, None)
            if operation is None:
                continue
            secured = path.startswith("/api/v1/") and path not in _PUBLIC and not path.startswith("/api/v1/webhooks")
            if path == "/api/v1/events":
                operation.security = [{STREAM_SCHEME: []}]
                secured = True
            elif secured:
                operation.security = [{BEARER_SCHEME: []}]
            else:
                operation.security = []
            responses: dict[str, Any] = dict(operation.responses or {})
            for status in _statuses(path, method, operation, secured):
                # the contract's error body replaces Litestar's generic 400 description
                responses[str(status)] = _error_response(status)
            operation.responses = responses
            summary, description = OPERATIONS.get(operation.operation_id or "", ("", ""))
            # Litestar's default summary is the bare handler name ("Get", "Waha")
            operation.summary = summary or _humanize(operation.operation_id or method)
            operation.description = description or operation.description
    return openapi
