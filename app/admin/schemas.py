from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec


class AdminUserOut(msgspec.Struct):
    id: UUID
    email: str
    name: str
    plan: str
    is_admin: bool
    max_chips: int
    chips: int
    created_at: datetime
    last_active_at: datetime


class AdminUserPage(msgspec.Struct):
    items: list[AdminUserOut]
    total: int


class AdminUserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    plan: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | msgspec.UnsetType = msgspec.UNSET
    is_admin: bool | msgspec.UnsetType = msgspec.UNSET
