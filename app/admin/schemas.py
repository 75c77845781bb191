from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import msgspec

from app.core.pagination import Page


class AdminUserOut(msgspec.Struct):
    id: UUID
    email: str
    name: str
    plan: str
    is_admin: bool
    disabled: bool
    max_chips: int
    chips: int
    created_at: datetime
    last_active_at: datetime


class AdminUserUpdate(msgspec.Struct, forbid_unknown_fields=True):
    plan: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] | msgspec.UnsetType = msgspec.UNSET
    is_admin: bool | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET


class AdminUserCreate(msgspec.Struct, forbid_unknown_fields=True):
    email: Annotated[str, msgspec.Meta(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
    name: Annotated[str, msgspec.Meta(max_length=128)] = ""
    plan: Annotated[str, msgspec.Meta(min_length=1, max_length=32)] = "free"


class AdminInstanceOut(msgspec.Struct, omit_defaults=True):
    """``nomad_ui_url`` is present only when WHAGO_NOMAD_UI_URL is set (api.md)."""

    user_id: UUID
    job_id: str
    status: str
    base_url: str | None
    sessions: int
    last_seen_at: datetime | None
    # a deep link to the job in the Nomad UI when WHAGO_NOMAD_UI_URL is set
    nomad_ui_url: str | None = None


class AdminChipOut(msgspec.Struct):
    id: UUID
    user_id: UUID
    alias: str
    status: str
    session_name: str
    phone_number: str | None
    proxy_id: UUID | None
    error: str | None
    status_changed_at: datetime
    created_at: datetime


class AdminUserPage(Page[AdminUserOut]):
    """{items, total, limit, offset}"""


class AdminChipPage(Page[AdminChipOut]):
    """{items, total, limit, offset}"""
