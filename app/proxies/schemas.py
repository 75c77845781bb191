from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec

Host = Annotated[str, msgspec.Meta(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.\-:\[\]]+$")]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Country = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{2}$")]
Secret = Annotated[str, msgspec.Meta(max_length=256)]


class ProxyCreate(msgspec.Struct, forbid_unknown_fields=True):
    scheme: Literal["http", "socks5"]
    host: Host
    port: Port
    username: Annotated[str, msgspec.Meta(max_length=128)] | None = None
    password: Secret | None = None
    country: Country | None = None
    max_chips: Annotated[int, msgspec.Meta(ge=0, le=10_000)] = 10


class ProxyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    scheme: Literal["http", "socks5"] | msgspec.UnsetType = msgspec.UNSET
    host: Host | msgspec.UnsetType = msgspec.UNSET
    port: Port | msgspec.UnsetType = msgspec.UNSET
    username: Annotated[str, msgspec.Meta(max_length=128)] | msgspec.UnsetType | None = msgspec.UNSET
    password: Secret | msgspec.UnsetType | None = msgspec.UNSET
    country: Country | msgspec.UnsetType | None = msgspec.UNSET
    max_chips: Annotated[int, msgspec.Meta(ge=0, le=10_000)] | msgspec.UnsetType = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET


class ProxyOut(msgspec.Struct):
    id: UUID
    scheme: str
    host: str
    port: int
    username: str | None
    has_password: bool
    country: str | None
    max_chips: int
    enabled: bool
    healthy: bool
    chips: int
    last_checked_at: datetime | None
    last_error: str | None
    created_at: datetime
