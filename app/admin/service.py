"""Operator views and actions across tenants."""

from __future__ import annotations

from uuid import UUID

import msgspec

from app.admin.schemas import (
    AdminChipOut,
    AdminChipPage,
    AdminInstanceOut,
    AdminUserOut,
    AdminUserPage,
    AdminUserUpdate,
)
from app.core import db
from app.core.errors import NotFound, ValidationFailed
from app.container import Container

_USERS_SQL = """
SELECT u.id, u.email, u.name, u.plan, u.is_admin, u.created_at, u.last_active_at,
       (SELECT count(*) FROM chips c WHERE c.user_id = u.id) AS chips, count(*) OVER () AS total
FROM users u {where} ORDER BY u.created_at, u.id LIMIT $1 OFFSET $2
"""


class AdminService:
    def __init__(self, services: Container) -> None:
        self.s = services

    def _user_out(self, row) -> AdminUserOut:
        return AdminUserOut(
            id=row["id"],
            email=row["email"],
            name=row["name"],
            plan=row["plan"],
            is_admin=row["is_admin"],
            max_chips=self.s.settings.plan_limits.get(row["plan"], 0),
            chips=row["chips"],
            created_at=row["created_at"],
            last_active_at=row["last_active_at"],
        )

    async def list_users(self, limit: int, offset: int) -> AdminUserPage:
        rows = await db.fetch(_USERS_SQL.format(where=""), limit, offset)
        total = rows[0]["total"] if rows else (await db.fetchrow("SELECT count(*) AS n FROM users"))["n"]
        return AdminUserPage(items=[self._user_out(r) for r in rows], total=total)

    async def update_user(self, user_id: UUID, data: AdminUserUpdate) -> AdminUserOut:
        plans = self.s.settings.plan_limits
        plan = None if data.plan is msgspec.UNSET else data.plan
        is_admin = None if data.is_admin is msgspec.UNSET else data.is_admin
        if plan is not None and plan not in plans:
            raise ValidationFailed(f"Unknown plan '{plan}'; one of: {', '.join(plans)}.")
        rows = await db.fetch(
            "UPDATE users SET plan = coalesce($2, plan), is_admin = coalesce($3, is_admin) WHERE id = $1 RETURNING id",
            user_id,
            plan,
            is_admin,
        )
        if not rows:
            raise NotFound("User not found.")
        row = await db.fetchrow(_USERS_SQL.format(where="WHERE u.id = $3"), 1, 0, user_id)
        return self._user_out(row)


    async def list_instances(self) -> list[AdminInstanceOut]:
        rows = await db.fetch(
            "SELECT user_id, job_id, status, base_url, sessions, last_seen_at FROM instances ORDER BY created_at, user_id"
        )
        return [msgspec.convert(dict(r), AdminInstanceOut) for r in rows]

    async def list_chips(self, user_id: UUID | None, status: str | None, limit: int, offset: int) -> AdminChipPage:
        rows = await db.fetch(
            """
            SELECT id, user_id, alias, status, session_name, phone_number, proxy_id, error, status_changed_at,
                   created_at, count(*) OVER () AS total
            FROM chips WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::varchar IS NULL OR status = $2)
            ORDER BY created_at DESC, id LIMIT $3 OFFSET $4
            """,
            user_id,
            status,
            limit,
            offset,
        )
        total = rows[0]["total"] if rows else 0
        items = [msgspec.convert({k: v for k, v in dict(r).items() if k != "total"}, AdminChipOut) for r in rows]
        return AdminChipPage(items=items, total=total)
