"""Operator views and actions across tenants."""

from __future__ import annotations

from urllib.parse import quote
from uuid import UUID

import msgspec

from app.admin import queries
from app.admin.schemas import (
    AdminChipPage,
    AdminInstanceOut,
    AdminUserCreate,
    AdminUserOut,
    AdminUserPage,
    AdminUserUpdate,
)
from app.audit import service as audit
from app.container import Container
from app.core import db
from app.core.errors import NotFound, ValidationFailed
from app.core.pagination import Page, paginate
from app.users.schemas import UserOut
from app.users.service import create_user, to_user_out, update_user


def _changed(old: object, new: object, fields: tuple[str, ...]) -> tuple[dict, dict]:
    """The fields that differ, before and after (what an audit entry shows)."""
    names = [f for f in fields if getattr(old, f) != getattr(new, f)]
    return {f: getattr(old, f) for f in names}, {f: getattr(new, f) for f in names}


class AdminService:
    def __init__(self, services: Container) -> None:
        self.s = services

    def _user_out(self, row: queries.AdminUserRow) -> AdminUserOut:
        return AdminUserOut(
            id=row.id,
            email=row.email,
            name=row.name,
            plan=row.plan,
            is_admin=row.is_admin,
            disabled=row.disabled,
            max_chips=self.s.settings.plan_limits.get(row.plan, 0),
            chips=row.chips,
            created_at=row.created_at,
            last_active_at=row.last_active_at,
        )

    async def list_users(self, limit: int, offset: int) -> AdminUserPage:
        page: Page[queries.AdminUserRow] = await paginate(queries.list_users, queries.count_users, limit, offset)
        return AdminUserPage(
            items=[self._user_out(r) for r in page.items], total=page.total, limit=limit, offset=offset
        )

    async def update_user(self, user_id: UUID, data: AdminUserUpdate) -> AdminUserOut:
        plans = self.s.settings.plan_limits
        plan = None if data.plan is msgspec.UNSET else data.plan
        is_admin = None if data.is_admin is msgspec.UNSET else data.is_admin
        disabled = None if data.disabled is msgspec.UNSET else data.disabled
        if plan is not None and plan not in plans:
            raise ValidationFailed(f"Unknown plan '{plan}'; one of: {', '.join(plans)}.")
        # the change, its token revocation and its audit entry commit together; disabling or
        # changing is_admin revokes the user's earlier tokens (same statement)
        async with db.transaction():
            old = await queries.get_user(user_id)
            if old is None or not await update_user(user_id, plan=plan, is_admin=is_admin, disabled=disabled):
                raise NotFound("User not found.")
            row = await queries.get_user(user_id)
            if row is None:  # deleted between the update and this read
                raise NotFound("User not found.")
            before, after = _changed(old, row, ("plan", "is_admin", "disabled"))
            if before != after:
                await audit.record(None, "user.update", ("user", user_id), before=before, after=after)
        self.s.tokens.forget_states()  # effective in this process at once, in the others within 5 s
        return self._user_out(row)

    async def create_user(self, data: AdminUserCreate) -> UserOut:
        """Works whatever ``WHAGO_SIGNUP`` says: this is how users arrive when sign-up is closed."""
        plans = self.s.settings.plan_limits
        if data.plan not in plans:
            raise ValidationFailed(f"Unknown plan '{data.plan}'; one of: {', '.join(plans)}.")
        password_hash = await self.s.passwords.hash(data.password)
        row = await create_user(
            email=data.email, name=data.name, password_hash=password_hash, plan=data.plan, is_admin=False
        )
        await audit.record(
            None, "user.create", ("user", row.id), after={"email": row.email, "plan": row.plan, "is_admin": False}
        )
        return to_user_out(row, plans)

    async def list_instances(self, limit: int, offset: int) -> Page[AdminInstanceOut]:
        page: Page[AdminInstanceOut] = await paginate(queries.list_instances, queries.count_instances, limit, offset)
        ui = self.s.settings.nomad_ui_url.rstrip("/")
        if ui:
            namespace = quote(self.s.settings.nomad_namespace or "default", safe="")
            page.items = [
                msgspec.structs.replace(i, nomad_ui_url=f"{ui}/jobs/{quote(i.job_id, safe='')}@{namespace}")
                for i in page.items
            ]
        return page

    async def list_chips(self, user_id: UUID | None, status: str | None, limit: int, offset: int) -> AdminChipPage:
        return await paginate(
            lambda lim, off: queries.list_chips(user_id, status, lim, off),
            lambda: queries.count_chips(user_id, status),
            limit,
            offset,
            page_type=AdminChipPage,
        )
