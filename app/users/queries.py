"""The users table: every query of the users feature, typed rows out (``UserRow``).

Plain lookups and writes use Piccolo; the one raw statement (the admin upsert) says why.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import msgspec

from app.core import db
from app.core.rows import maybe_struct, to_struct
from app.users.tables import User


class UserRow(msgspec.Struct):
    """A users row as stored (``password_hash`` included: it never leaves the service layer)."""

    id: UUID
    email: str
    name: str
    password_hash: str
    plan: str
    is_admin: bool
    created_at: datetime
    last_active_at: datetime


async def get_by_id(user_id: UUID) -> UserRow | None:
    return maybe_struct(await User.select().where(User.id == user_id).first(), UserRow)


async def get_by_email(email: str) -> UserRow | None:
    """``email`` must already be normalised (lower-cased): that is how it is stored."""
    return maybe_struct(await User.select().where(User.email == email).first(), UserRow)


async def insert(*, email: str, name: str, password_hash: str, plan: str, is_admin: bool) -> UserRow:
    """Raises ``asyncpg.exceptions.UniqueViolationError`` when the email is taken."""
    rows = await User.insert(
        User(email=email, name=name, password_hash=password_hash, plan=plan, is_admin=is_admin)
    ).returning(*User.all_columns())
    return to_struct(rows[0], UserRow)


async def update(user_id: UUID, *, plan: str | None = None, is_admin: bool | None = None) -> bool:
    """Set the given fields (None = keep); False when there is no such user."""
    values: dict = {}
    if plan is not None:
        values[User.plan] = plan
    if is_admin is not None:
        values[User.is_admin] = is_admin
    if not values:
        return await User.exists().where(User.id == user_id)
    return bool(await User.update(values).where(User.id == user_id).returning(User.id))


async def upsert_admin(*, email: str, password_hash: str, plan: str) -> bool:
    """Create an admin, or promote and re-password an existing account; True when created."""
    # Raw: one atomic INSERT … ON CONFLICT that also tells created from updated (xmax = 0), which
    # Piccolo's on_conflict cannot report.
    row = await db.fetchrow(
        """
        INSERT INTO users (email, name, password_hash, plan, is_admin) VALUES ($1, '', $2, $3, true)
        ON CONFLICT (email) DO UPDATE SET is_admin = true, password_hash = EXCLUDED.password_hash
        RETURNING (xmax = 0) AS created
        """,
        email,
        password_hash,
        plan,
    )
    # INSERT … ON CONFLICT DO UPDATE returns the row either way
    return bool(row and row["created"])
