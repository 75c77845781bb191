"""Registration, login, password change, logout and token revocation checks.

Hashing is bounded (``PasswordHashing``: argon2id at OWASP's minimum, a per-process cap), and
every attempt is counted in Redis *before* the password is checked, so concurrent guesses can
never exceed a limit. Failures are limited per (email, client IP) and per client IP, with a
looser ceiling per email: a stranger's guesses exhaust their own budget, not the owner's.
"""

from __future__ import annotations

import hashlib
from uuid import UUID

from app.audit import service as audit
from app.auth.schemas import AuthOut, LoginIn, PasswordChangeIn, RegisterIn, StreamTokenOut
from app.container import Container
from app.core.errors import Forbidden, NotAuthenticated, RateLimited
from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key
from app.core.security import ACCESS, STREAM, TokenClaims
from app.users.service import (
    UserRow,
    create_user,
    find_user_by_email,
    require_user_row,
    revoke_token,
    set_password,
    to_user_out,
    token_state,
)

_LOGIN_LIMIT = "login"
_AUTH_IP_LIMIT = "auth-ip"
_PASSWORD_LIMIT = "password-change"  # noqa: S105 - a limiter name


def _subject(*parts: str) -> str:
    # counter keys never hold an address (email or IP) itself
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


async def ensure_not_revoked(services: Container, claims: TokenClaims) -> None:
    """401 when the token was revoked; state read at most every REVOCATION_CACHE_SECONDS per token,
    so a revocation made in any process is seen by every process within 5 seconds."""
    state = services.tokens.cached_state(claims)
    if state is None:
        state = await token_state(claims.user_id, claims.token_id)
        services.tokens.remember(claims, state)
    services.tokens.check(claims, state)


class AuthService:
    def __init__(self, services: Container) -> None:
        self.s = services

    def _auth_out(self, row: UserRow) -> AuthOut:
        token, ttl = self.s.tokens.issue(row.id, row.token_version, ACCESS)
        return AuthOut(user=to_user_out(row, self.s.settings.plan_limits), access_token=token, expires_in=ttl)

    async def _limit_ip(self, client_ip: str) -> None:
        await self.s.limiter.hit(
            _AUTH_IP_LIMIT,
            _subject(client_ip),
            limit=self.s.settings.auth_ip_limit_per_minute,
            window_seconds=60,
            detail="Too many sign-up or login attempts from your address; try again later.",
        )

    async def register(self, data: RegisterIn, client_ip: str) -> AuthOut:
        if self.s.settings.signup == "closed":
            raise Forbidden("Sign-up is closed; ask an administrator for an account.", code="signup_closed")
        await self._limit_ip(client_ip)  # before the hash: an anonymous flood costs one Redis call each
        password_hash = await self.s.passwords.hash(data.password)
        # self-registered users start on the free plan and are never admins
        row = await create_user(
            email=data.email, name=data.name, password_hash=password_hash, plan="free", is_admin=False
        )
        return self._auth_out(row)

    async def _audit_lockout(self, email: str, client_ip: str) -> None:
        """One audit entry per lock-out (not per refused attempt): the first refusal in a window."""
        window = self.s.settings.login_failure_window_seconds
        try:
            first = await self.s.redis.set(
                key("audit", "login-locked", _subject("email", email)), 1, nx=True, ex=window
            )
        except REDIS_UNAVAILABLE_ERRORS:
            return  # the limiter itself would have failed first; nothing to record
        if first:
            row = await find_user_by_email(email)
            await audit.record(
                None,
                "auth.login_locked",
                ("user", row.id if row else None),
                after={"email": email, "client_ip": client_ip, "window_seconds": window},
            )

    async def login(self, data: LoginIn, client_ip: str) -> AuthOut:
        email = data.email.strip().lower()
        settings = self.s.settings
        await self._limit_ip(client_ip)
        limits = {
            _subject("email+ip", email, client_ip): settings.login_max_failures,
            _subject("ip", client_ip): settings.login_max_failures_per_ip,
            _subject("email", email): settings.login_max_failures_per_email,
        }
        # Counted as a failure now, taken back on success: the count is never behind the checks.
        try:
            attempt = await self.s.attempts.acquire(
                _LOGIN_LIMIT,
                limits,
                window_seconds=settings.login_failure_window_seconds,
                detail="Too many failed logins; try again later.",
            )
        except RateLimited:
            await self._audit_lockout(email, client_ip)
            raise
        row = await find_user_by_email(email)
        if not await self.s.passwords.verify(row.password_hash if row else None, data.password) or row is None:
            # same answer whether or not the email exists
            raise NotAuthenticated("Invalid email or password.", code="invalid_credentials")
        await self.s.attempts.forgive(_LOGIN_LIMIT, list(limits), attempt)
        if row.disabled:
            raise Forbidden("This account is disabled.", code="account_disabled")
        return self._auth_out(row)

    async def change_password(self, claims: TokenClaims, data: PasswordChangeIn) -> AuthOut:
        row = await require_user_row(claims.user_id)
        limits = {_subject("user", str(row.id)): self.s.settings.login_max_failures}
        attempt = await self.s.attempts.acquire(
            _PASSWORD_LIMIT,
            limits,
            window_seconds=self.s.settings.login_failure_window_seconds,
            detail="Too many wrong current passwords; try again later.",
        )
        if not await self.s.passwords.verify(row.password_hash, data.current_password):
            raise NotAuthenticated("The current password is wrong.", code="invalid_credentials")
        await self.s.attempts.forgive(_PASSWORD_LIMIT, list(limits), attempt)
        row = await set_password(row.id, await self.s.passwords.hash(data.new_password))
        await audit.record(None, "auth.password_change", ("user", row.id), after={"tokens_revoked": True})
        self.s.tokens.forget_states()
        return self._auth_out(row)

    async def logout(self, claims: TokenClaims) -> None:
        await revoke_token(claims.user_id, claims.token_id, claims.expires_at)
        await audit.record(None, "auth.token_revoked", ("user", claims.user_id), after={"reason": "logout"})
        self.s.tokens.forget_states()

    async def stream_token(self, user_id: UUID) -> StreamTokenOut:
        row = await require_user_row(user_id)
        token, ttl = self.s.tokens.issue(user_id, row.token_version, STREAM)
        return StreamTokenOut(token=token, expires_in=ttl)
