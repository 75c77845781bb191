"""``whago create-admin``: creates an admin account; never promotes someone else's account by surprise.

An existing non-admin account with that email may have been registered by anyone (sign-up is
open by default): promoting it silently would hand its owner, and every token they hold, admin
rights. So that takes ``--promote-existing``, which also sets the given password and revokes every
earlier token of the account.
"""

from __future__ import annotations

from app.audit import service as audit
from app.core import db
from app.core.security import PasswordHashing
from app.settings import Settings
from app.users import queries


async def create_admin(settings: Settings, email: str, password: str, *, promote_existing: bool = False) -> str:
    email = email.strip().lower()
    if not (8 <= len(password) <= 128) or "@" not in email or len(email) > 254:
        raise SystemExit("create-admin: need a valid email and a password of 8-128 characters")
    await db.migrate(settings)
    password_hash = await PasswordHashing(settings).hash(password)
    # new operators start on the free plan, like self-registered users
    if await queries.create_admin(email=email, password_hash=password_hash, plan="free"):
        created = await queries.get_by_email(email)
        await audit.record(
            None,
            "user.create_admin",
            ("user", created.id if created else None),
            after={"email": email, "is_admin": True, "created": True, "via": "cli"},
        )
        return f"created admin {email}"
    existing = await queries.get_by_email(email)
    if existing is not None and not existing.is_admin and not promote_existing:
        raise SystemExit(
            f"create-admin: {email} already has a non-admin account, which anyone may have registered. "
            "Nothing changed. If it is yours, run again with --promote-existing: the account becomes an "
            "admin with the given password and every earlier token of it is revoked."
        )
    if not await queries.promote_admin(email=email, password_hash=password_hash):
        raise SystemExit(f"create-admin: {email} vanished meanwhile; nothing changed, run again")
    await audit.record(
        None,
        "user.create_admin",
        ("user", existing.id if existing else None),
        after={"email": email, "is_admin": True, "created": False, "tokens_revoked": True, "via": "cli"},
    )
    verb = "promoted" if existing is not None and not existing.is_admin else "reset password of"
    return f"{verb} admin {email} (earlier tokens revoked)"
