"""msgspec structs for the WAHA bodies WHAGO reads or writes (WAHA 2026.7.x, see waha-openapi.json).

Python names are snake_case; ``rename="camel"`` maps them to WAHA's JSON names (``delaySeconds``,
``pushName``, ``assignedWorker``). Unknown fields in WAHA answers are ignored, so newer WAHA
versions that add fields keep decoding. Structs holding secrets mask them in ``repr`` so an
accidental log line never carries a proxy password or an HMAC key.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

SessionStatus = Literal[
    "STOPPED",
    "STARTING",
    "SCAN_QR_CODE",
    "PASSKEY_REQUIRED",
    "PASSKEY_CONFIRMATION_REQUIRED",
    "WORKING",
    "FAILED",
]
RetryPolicy = Literal["constant", "linear", "exponential"]

# message.ack: delivery status of the messages WHAGO sends (on WEBJS it needs webjs.tagsEventsOn)
DEFAULT_EVENTS: tuple[str, ...] = ("session.status", "message", "message.ack")


class _Body(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True):
    """Base: camelCase on the wire; unset optional fields are not sent."""


class ProxyConfig(_Body):
    """WAHA ``ProxyConfig``: ``server`` is ``host:port`` without a scheme."""

    server: str
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_parts(cls, host: str, port: int, username: str | None = None, password: str | None = None) -> ProxyConfig:
        return cls(server=f"{host}:{int(port)}", username=username or None, password=password or None)

    def __repr__(self) -> str:
        password = "***" if self.password else None
        return f"ProxyConfig(server={self.server!r}, username={self.username!r}, password={password})"


class HmacConfig(_Body):
    key: str | None = None

    def __repr__(self) -> str:
        return "HmacConfig(key=***)"


class RetriesConfig(_Body):
    # No defaults on purpose: omit_defaults would otherwise drop a value equal to the default
    # and WAHA would apply its own (15 attempts, 2 s apart).
    policy: RetryPolicy | None = None
    delay_seconds: float | None = None
    attempts: int | None = None


class CustomHeader(_Body):
    name: str
    value: str


class WebhookConfig(_Body):
    url: str
    events: list[str]
    hmac: HmacConfig | None = None
    retries: RetriesConfig | None = None
    custom_headers: list[CustomHeader] | None = None


class WebjsConfig(_Body):
    tags_events_on: bool | None = None


class SessionConfig(_Body):
    metadata: dict[str, Any] | None = None
    proxy: ProxyConfig | None = None
    webhooks: list[WebhookConfig] | None = None
    debug: bool = False
    webjs: WebjsConfig | None = None


class MeInfo(_Body):
    id: str
    push_name: str | None = None
    lid: str | None = None
    jid: str | None = None

    @property
    def phone_number(self) -> str:
        """Digits of ``<digits>@c.us``."""
        return self.id.split("@", 1)[0]


class SessionTimestamps(_Body):
    activity: float | None = None


class SessionDTO(_Body):
    name: str
    status: str  # a SessionStatus; plain str so a status added by a newer WAHA still decodes
    config: SessionConfig | None = None


class SessionInfo(_Body):
    name: str
    status: str  # a SessionStatus; plain str so a status added by a newer WAHA still decodes
    config: SessionConfig | None = None
    me: MeInfo | None = None
    assigned_worker: str | None = None
    presence: Any = None  # shape undocumented beyond "object"; never relied upon
    timestamps: SessionTimestamps | None = None


class QRCodeValue(_Body):
    value: str


class Base64File(_Body):
    mimetype: str
    data: str


class PairingCode(_Body):
    code: str


class WorkerInfo(_Body):
    id: str | None = None


class ServerVersion(_Body):
    """WAHA ``WAHAEnvironment`` (``GET /api/server/version``; also the webhook ``environment``)."""

    version: str
    engine: str
    tier: str | None = None
    browser: str | None = None
    platform: str | None = None
    worker: WorkerInfo | None = None
