"""The WAHA envelope as the receiver needs it: strict on what we act on, lenient on the rest
(``engine``/``environment`` vary between WAHA versions and are never used)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class EnvelopeMe(msgspec.Struct):
    id: str


class StatusPayload(msgspec.Struct):
    status: Annotated[str, msgspec.Meta(max_length=64)]


class AckPayload(msgspec.Struct):
    """``WAMessageAckBody``, the part the receiver acts on."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    ack: int | float  # the spec types it as a number; only -1..4 are mapped


class Envelope(msgspec.Struct):
    event: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    session: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    # milliseconds; bounded so that it is a datetime (year <= 9999) rather than a 500 later
    timestamp: Annotated[int, msgspec.Meta(ge=0, le=MAX_TIMESTAMP_MS)] | None = None
    metadata: dict[str, Any] | None = None
    me: EnvelopeMe | None = None
    payload: Any = None
    engine: Any = None
    environment: Any = None


class WebhookAck(msgspec.Struct):
    status: str  # "ok" | "duplicate" | "ignored"
