from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec


class AuditEntryOut(msgspec.Struct):
    id: UUID
    at: datetime
    actor_id: UUID | None
    actor_email: str | None
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditPage(msgspec.Struct):
    """``{items, next_before}``: pass ``next_before`` as ``before`` for the next (older) page; null at the end."""

    items: list[AuditEntryOut]
    next_before: UUID | None
