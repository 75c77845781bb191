"""Building, signing and delivering WAHA webhook envelopes to the API (waha.md §4.3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx

from app.core.tenant_keys import WEBHOOK_PURPOSE, derive
from tests.support.env import WEBHOOK_HMAC_KEY

HOOK = "/api/v1/webhooks/waha"
KEY = WEBHOOK_HMAC_KEY


def tenant_hook(user_id: str) -> str:
    """The per-tenant route new sessions post to."""
    return f"{HOOK}/{user_id}"


def tenant_key(user_id: str, platform_key: str = KEY) -> str:
    """The tenant's webhook key, derived from the platform key as WHAGO derives it."""
    return derive(platform_key, WEBHOOK_PURPOSE, user_id)


# WAHA session status -> the chip status it moves the chip to
MAPPING = {
    "STARTING": "starting",
    "SCAN_QR_CODE": "waiting_qr",
    "WORKING": "connected",
    "STOPPED": "disconnected",
    "FAILED": "failed",
}


def sign(body: bytes, key: str = KEY) -> str:
    return hmac.new(key.encode(), body, hashlib.sha512).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex[:26]


def metadata(user: dict, chip: dict) -> dict[str, str]:
    return {"user_id": user["user"]["id"], "chip_id": chip["id"]}


def envelope(
    session: str,
    status: str | None = None,
    *,
    event: str = "session.status",
    at: int | None = None,
    event_id: str | None = None,
    meta: dict | None = None,
    me: dict | None = None,
    payload: Any = None,
) -> dict[str, Any]:
    """A WAHA event envelope with every field WAHA sends (waha.md §4.3)."""
    if payload is None and event == "session.status":
        payload = {"name": session, "status": status, "statuses": [], "data": None}
    return {
        "id": event_id or new_event_id(),
        "timestamp": now_ms() if at is None else at,
        "event": event,
        "session": session,
        "metadata": meta,
        "me": me,
        "payload": payload,
        "engine": "GOWS",
        "environment": {
            "version": "2026.7.1",
            "engine": "GOWS",
            "tier": "CORE",
            "browser": "",
            "platform": "linux/x64",
            "worker": {"id": "test"},
        },
    }


def status_event(
    user: dict,
    chip: dict,
    status: str,
    *,
    at: int | None = None,
    phone: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    me = {"id": f"{phone}@c.us", "pushName": "Test"} if phone else None
    return envelope(chip["session_name"], status, at=at, event_id=event_id, meta=metadata(user, chip), me=me)


async def deliver(
    client: httpx.AsyncClient,
    body: dict | bytes,
    *,
    signature: str | bool | None = True,
    headers: dict | None = None,
    path: str = HOOK,
    key: str = KEY,
) -> httpx.Response:
    """POST a webhook; ``signature=True`` signs the exact bytes sent (with ``key``), a string is
    sent as is. ``path``: the platform route, or ``tenant_hook(user_id)``."""
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    if signature is True:
        sent["X-Webhook-Hmac"] = sign(raw, key)
        sent["X-Webhook-Hmac-Algorithm"] = "sha512"
    elif signature:
        sent["X-Webhook-Hmac"] = signature
    return await client.post(path, content=raw, headers=sent)


async def deliver_ok(client: httpx.AsyncClient, body: dict, expect: str = "ok") -> None:
    response = await deliver(client, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"status": expect}, (body.get("event"), body.get("payload"))
