"""Registration and login: argon2 hashes, uniform failures, per-email failure limits."""

from __future__ import annotations

import hashlib
from uuid import UUID

from app.audit import service as audit
from app.auth.schemas import AuthOut, LoginIn, RegisterIn, StreamTokenOut
from app.container import Container
from app.core.errors import NotAuthenticated, RateLimited
from app.core.security import ACCESS, STREAM
from app.users.service import UserRow, create_user, find_user_by_email, require_user_row, to_user_out

_LOGIN_LIMIT = "login"


def _email_subject(email: str) -> str:
    # the counter key never holds the address itself
    return hashlib.sha256(email.encode()).hexdigest()[:32]


class AuthService:
    def __init__(self, services: Container) -> None:
        self.s = services

    def _auth_out(self, row: UserRow) -> AuthOut:
        token, ttl = self.s.tokens.issue(row.id, ACCESS)
        return AuthOut(user=to_user_out(row, self.s.settings.plan_limits), access_token=token, expires_in=ttl)

    async def register(self, data: RegisterIn) -> AuthOut:
        password_hash = await self.s.passwords.hash(data.password)
        # self-registered users start on the free plan and are never admins
        row = await create_user(
            email=data.email, name=data.name, password_hash=password_hash, plan="free", is_admin=False
        )
        return self._auth_out(row)

    async def login(self, data: LoginIn) -> AuthOut:
        email = data.email.strip().lower()
        subject = _email_subject(email)
        settings = self.s.settings
        window = settings.login_failure_window_seconds
        retry_after = await self.s.limiter.retry_after(
            _LOGIN_LIMIT, subject, limit=settings.login_max_failures, window_seconds=window
        )
        if retry_after:
            raise RateLimited("Too many failed logins for this account; try again later.", retry_after=retry_after)
        row = await find_user_by_email(email)
        if not await self.s.passwords.verify(row.password_hash if row else None, data.password) or row is None:
            await self.s.limiter.record(_LOGIN_LIMIT, subject, window_seconds=window)
            if await self.s.limiter.retry_after(
                _LOGIN_LIMIT, subject, limit=settings.login_max_failures, window_seconds=window
            ):
                # this failure reached the limit: one entry per lock-out, not one per refused attempt
                await audit.record(
                    None,
                    "auth.login_locked",
                    ("user", row.id if row else None),
                    after={"email": email, "failures": settings.login_max_failures, "window_seconds": window},
                )
            # same answer whether or not the email exists
            raise NotAuthenticated("Invalid email or password.", code="invalid_credentials")
        await self.s.limiter.reset(_LOGIN_LIMIT, subject)
        return self._auth_out(row)

    async def stream_token(self, user_id: UUID) -> StreamTokenOut:
        await require_user_row(user_id)
        token, ttl = self.s.tokens.issue(user_id, STREAM)
        return StreamTokenOut(token=token, expires_in=ttl)
