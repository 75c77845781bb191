"""Users: lookups shared by auth, chips and admin."""

from __future__ import annotations

from uuid import UUID

from app.core.errors import NotAuthenticated
from app.users.schemas import UserOut
from app.users.tables import User


async def get_user_row(user_id: UUID) -> dict | None:
    return await User.select().where(User.id == user_id).first()


async def require_user_row(user_id: UUID) -> dict:
    row = await get_user_row(user_id)
    if row is None:
        # a valid token for a user that no longer exists
        raise NotAuthenticated("Unknown user.")
    return row


def to_user_out(row: dict, plan_limits: dict[str, int]) -> UserOut:
    return UserOut(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        plan=row["plan"],
        is_admin=row["is_admin"],
        max_chips=plan_limits.get(row["plan"], 0),
        created_at=row["created_at"],
    )
