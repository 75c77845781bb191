"""``whago create-admin``: idempotent (creates the account, or promotes and re-passwords it)."""

from __future__ import annotations

from app.core import db
from app.core.security import PasswordHashing
from app.settings import Settings


async def create_admin(settings: Settings, email: str, password: str) -> str:
    email = email.strip().lower()
    if not (8 <= len(password) <= 128) or "@" not in email or len(email) > 254:
        raise SystemExit("create-admin: need a valid email and a password of 8-128 characters")
    await db.migrate(settings)
    password_hash = await PasswordHashing(settings).hash(password)
    row = await db.fetchrow(
        """
        INSERT INTO users (email, name, password_hash, plan, is_admin) VALUES ($1, '', $2, 'free', true)
        ON CONFLICT (email) DO UPDATE SET is_admin = true, password_hash = EXCLUDED.password_hash
        RETURNING (xmax = 0) AS created
        """,
        email,
        password_hash,
    )
    return f"{'created' if row['created'] else 'promoted'} admin {email}"
