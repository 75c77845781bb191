from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.chips.status import ChipHealth, ChipStatus
from app.core.pagination import Page

Alias = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"\S")]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$")]


class ChipCreate(msgspec.Struct, forbid_unknown_fields=True):
    alias: Alias
    proxy_country: Country | None = None


class ChipRename(msgspec.Struct, forbid_unknown_fields=True):
    alias: Alias


class ChipProxy(msgspec.Struct):
    id: UUID
    country: str | None


class ChipOut(msgspec.Struct):
    id: UUID
    alias: str
    status: ChipStatus
    session_name: str
    phone_number: str | None
    proxy: ChipProxy | None
    error: str | None
    status_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    # WHAGO's liveness verdict (ok / degraded / unknown); never replaces status
    health: ChipHealth = ChipHealth.UNKNOWN
    health_checked_at: datetime | None = None


class ChipPage(Page[ChipOut]):
    pass


class ChipEventOut(msgspec.Struct):
    at: datetime
    from_status: str | None
    to_status: str
    source: str
    detail: str | None


class ChipEventPage(msgspec.Struct):
    items: list[ChipEventOut]


PhoneDigits = Annotated[str, msgspec.Meta(pattern=r"^\+?[0-9]{8,15}$")]


class PairingCodeIn(msgspec.Struct, forbid_unknown_fields=True):
    phone_number: PhoneDigits


class PairingCodeOut(msgspec.Struct):
    code: str


class QrOut(msgspec.Struct):
    status: ChipStatus
    qr_code: str | None
    message: str
