"""Read-only operator views across tenants (users, instances, chips), typed rows out.

Raw SQL on purpose: these listings read other features' tables (users, chips, instances) for one
screen each, without importing those features' table classes; the users listing also counts chips
per user in the same statement. Writes never happen here: admin actions go through the owning
feature's service.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from app.admin.schemas import AdminChipOut, AdminInstanceOut
from app.core import db
from app.core.rows import maybe_struct, to_structs


class AdminUserRow(msgspec.Struct):
    id: UUID
    email: str
    name: str
    plan: str
    is_admin: bool
    disabled: bool
    created_at: datetime
    last_active_at: datetime
    chips: int


# One round trip per page: each user's chip count is a correlated subquery on chips' user_id index.
_USERS_SELECT = """
SELECT u.id, u.email, u.name, u.plan, u.is_admin, u.disabled, u.created_at, u.last_active_at,
       (SELECT count(*) FROM chips c WHERE c.user_id = u.id) AS chips
FROM users u
"""

# "no filter" is a NULL parameter, so one prepared statement serves every filter combination.
_CHIPS_WHERE = "WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::varchar IS NULL OR status = $2)"


async def list_users(limit: int, offset: int) -> list[AdminUserRow]:
    rows = await db.fetch(_USERS_SELECT + " ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2", limit, offset)
    return to_structs(rows, AdminUserRow)


async def count_users() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM users")
    return row["n"] if row else 0


async def get_user(user_id: UUID) -> AdminUserRow | None:
    return maybe_struct(await db.fetchrow(_USERS_SELECT + " WHERE u.id = $1", user_id), AdminUserRow)


async def list_instances(limit: int, offset: int) -> list[AdminInstanceOut]:
    rows = await db.fetch(
        "SELECT user_id, job_id, status, base_url, sessions, last_seen_at FROM instances"
        " ORDER BY created_at, user_id LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    return to_structs(rows, AdminInstanceOut)


async def count_instances() -> int:
    row = await db.fetchrow("SELECT count(*) AS n FROM instances")
    return row["n"] if row else 0


async def list_chips(user_id: UUID | None, status: str | None, limit: int, offset: int) -> list[AdminChipOut]:
    rows = await db.fetch(
        "SELECT id, user_id, alias, status, session_name, phone_number, proxy_id, error, status_changed_at, created_at"
        f" FROM chips {_CHIPS_WHERE} ORDER BY created_at DESC, id LIMIT $3 OFFSET $4",
        user_id,
        status,
        limit,
        offset,
    )
    return to_structs(rows, AdminChipOut)


async def count_chips(user_id: UUID | None, status: str | None) -> int:
    row = await db.fetchrow(f"SELECT count(*) AS n FROM chips {_CHIPS_WHERE}", user_id, status)
    return row["n"] if row else 0
