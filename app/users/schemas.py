from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec


class UserOut(msgspec.Struct):
    id: UUID
    email: str
    name: str
    plan: str
    is_admin: bool
    disabled: bool
    max_chips: int
    created_at: datetime
