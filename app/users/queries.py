"""The users table: every query of the users feature, typed rows out (``UserRow``).

Plain lookups and writes use Piccolo; raw statements where one atomic statement must do more
(bump the token version with the change it revokes for, insert-or-nothing).
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
    disabled: bool = False
    token_version: int = 0


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


async def update(
    user_id: UUID, *, plan: str | None = None, is_admin: bool | None = None, disabled: bool | None = None
) -> bool:
    """Set the given fields (None = keep); False when there is no such user.

    Disabling the account or changing ``is_admin`` bumps ``token_version`` in the same statement:
    every token issued before stops working.
    """
    row = await db.fetchrow(
        """
        UPDATE users SET
            plan = COALESCE($2::varchar, plan),
            is_admin = COALESCE($3::boolean, is_admin),
            disabled = COALESCE($4::boolean, disabled),
            token_version = token_version
                + CASE WHEN ($3::boolean IS NOT NULL AND $3::boolean <> is_admin)
                         OR ($4::boolean IS TRUE AND NOT disabled) THEN 1 ELSE 0 END
        WHERE id = $1
        RETURNING id
        """,
        user_id,
        plan,
        is_admin,
        disabled,
    )
    return row is not None


async def set_password(user_id: UUID, password_hash: str) -> UserRow | None:
    """New hash and a new token version (every earlier token revoked), atomically."""
    rows = await db.fetch(
        "UPDATE users SET password_hash = $2, token_version = token_version + 1 WHERE id = $1 RETURNING *",
        user_id,
        password_hash,
    )
    return to_struct(rows[0], UserRow) if rows else None


async def token_state(user_id: UUID, token_id: UUID) -> tuple[int, bool, bool] | None:
    """(token_version, disabled, this token revoked) of a user, or None for no such user."""
    row = await db.fetchrow(
        """
        SELECT u.token_version, u.disabled,
               EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = $2) AS revoked
        FROM users u WHERE u.id = $1
        """,
        user_id,
        token_id,
    )
    return None if row is None else (row["token_version"], row["disabled"], row["revoked"])


async def token_states(pairs: list[tuple[UUID, UUID]]) -> dict[UUID, tuple[int, bool, bool] | None]:
    """``token_state`` for many (user id, token id) pairs in one statement, by token id (None for
    no such user)."""
    if not pairs:
        return {}
    rows = await db.fetch(
        """
        SELECT q.jti, u.token_version, u.disabled,
               EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = q.jti) AS revoked
        FROM unnest($1::uuid[], $2::uuid[]) AS q(user_id, jti)
        LEFT JOIN users u ON u.id = q.user_id
        """,
        [user_id for user_id, _ in pairs],
        [token_id for _, token_id in pairs],
    )
    return {
        row["jti"]: None if row["token_version"] is None else (row["token_version"], row["disabled"], row["revoked"])
        for row in rows
    }


async def revoke_token(user_id: UUID, token_id: UUID, expires_at: datetime) -> None:
    # Expired entries go at the same time: they can never match a usable token again.
    await db.fetch(
        """
        WITH gone AS (DELETE FROM revoked_tokens WHERE expires_at < now())
        INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
        ON CONFLICT (jti) DO NOTHING
        """,
        token_id,
        user_id,
        expires_at,
    )


async def create_admin(*, email: str, password_hash: str, plan: str) -> bool:
    """Create a new admin account; False when the email is already taken (nothing changed)."""
    row = await db.fetchrow(
        """
        INSERT INTO users (email, name, password_hash, plan, is_admin) VALUES ($1, '', $2, $3, true)
        ON CONFLICT DO NOTHING
        RETURNING id
        """,
        email,
        password_hash,
        plan,
    )
    return row is not None


async def promote_admin(*, email: str, password_hash: str) -> bool:
    """Make an existing account an admin with the given password; every earlier token of it is
    revoked (version bump), so whoever registered the address first keeps nothing."""
    row = await db.fetchrow(
        """
        UPDATE users SET is_admin = true, disabled = false, password_hash = $2,
                         token_version = token_version + 1
        WHERE email = $1
        RETURNING id
        """,
        email,
        password_hash,
    )
    return row is not None
