"""``whago create-admin``: idempotent (creates the account, or promotes and re-passwords it)."""

from __future__ import annotations

from app.audit import service as audit
from app.core import db
from app.core.security import PasswordHashing
from app.settings import Settings
from app.users import queries


async def create_admin(settings: Settings, email: str, password: str) -> str:
    email = email.strip().lower()
    if not (8 <= len(password) <= 128) or "@" not in email or len(email) > 254:
        raise SystemExit("create-admin: need a valid email and a password of 8-128 characters")
    await db.migrate(settings)
    password_hash = await PasswordHashing(settings).hash(password)
    # new operators start on the free plan, like self-registered users
    created = await queries.upsert_admin(email=email, password_hash=password_hash, plan="free")
    user = await queries.get_by_email(email)
    await audit.record(
        None,
        "user.create_admin",
        ("user", user.id if user else None),
        after={"email": email, "is_admin": True, "created": created, "via": "cli"},
    )
    return f"{'created' if created else 'promoted'} admin {email}"
