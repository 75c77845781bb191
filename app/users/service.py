"""Users: lookups and writes shared by auth, chips and admin (other features come here, never to
``app.users.queries``)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import asyncpg

from app.core.errors import Conflict, NotAuthenticated
from app.core.security import TokenState
from app.users import queries
from app.users.queries import UserRow
from app.users.schemas import UserOut

__all__ = [
    "UserRow",
    "create_user",
    "find_user_by_email",
    "get_user_row",
    "require_user_row",
    "revoke_token",
    "set_password",
    "to_user_out",
    "token_state",
    "token_states",
    "update_user",
]


async def get_user_row(user_id: UUID) -> UserRow | None:
    return await queries.get_by_id(user_id)


async def require_user_row(user_id: UUID) -> UserRow:
    row = await queries.get_by_id(user_id)
    if row is None:
        # a valid token for a user that no longer exists
        raise NotAuthenticated("Unknown user.")
    return row


async def find_user_by_email(email: str) -> UserRow | None:
    return await queries.get_by_email(email.strip().lower())


async def create_user(*, email: str, name: str, password_hash: str, plan: str, is_admin: bool) -> UserRow:
    """Emails are case-insensitive and unique: a taken one is 409 ``email_taken``."""
    try:
        return await queries.insert(
            email=email.strip().lower(), name=name.strip(), password_hash=password_hash, plan=plan, is_admin=is_admin
        )
    except asyncpg.exceptions.UniqueViolationError:
        raise Conflict("An account with this email already exists.", code="email_taken") from None


async def update_user(
    user_id: UUID, *, plan: str | None = None, is_admin: bool | None = None, disabled: bool | None = None
) -> bool:
    """Change the given fields (None = keep); False when there is no such user. Disabling or a
    change of ``is_admin`` revokes every earlier token of the user."""
    return await queries.update(user_id, plan=plan, is_admin=is_admin, disabled=disabled)


async def set_password(user_id: UUID, password_hash: str) -> UserRow:
    """New password; every earlier token of the user stops working."""
    row = await queries.set_password(user_id, password_hash)
    if row is None:
        raise NotAuthenticated("Unknown user.")
    return row


async def token_state(user_id: UUID, token_id: UUID) -> TokenState:
    found = await queries.token_state(user_id, token_id)
    if found is None:
        return TokenState(version=-1, disabled=True, revoked=True)
    version, disabled, revoked = found
    return TokenState(version=version, disabled=disabled, revoked=revoked)


async def token_states(pairs: list[tuple[UUID, UUID]]) -> dict[UUID, TokenState]:
    """``token_state`` of many (user id, token id) pairs at once, by token id."""
    found = await queries.token_states(pairs)
    return {
        token_id: TokenState(version=-1, disabled=True, revoked=True)
        if state is None
        else TokenState(version=state[0], disabled=state[1], revoked=state[2])
        for token_id, state in found.items()
    }


async def revoke_token(user_id: UUID, token_id: UUID, expires_at: int) -> None:
    await queries.revoke_token(user_id, token_id, datetime.fromtimestamp(expires_at, UTC))


def to_user_out(row: UserRow, plan_limits: dict[str, int]) -> UserOut:
    return UserOut(
        id=row.id,
        email=row.email,
        name=row.name,
        plan=row.plan,
        is_admin=row.is_admin,
        disabled=row.disabled,
        max_chips=plan_limits.get(row.plan, 0),
        created_at=row.created_at,
    )
