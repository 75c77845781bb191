"""Password hashing (argon2id, off the event loop) and signed, expiring bearer tokens (JWT HS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import anyio.to_thread
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.errors import NotAuthenticated
from app.settings import Settings

ACCESS = "access"
STREAM = "stream"
_ALGORITHM = "HS256"


class PasswordHashing:
    def __init__(self, settings: Settings) -> None:
        # The test suite registers many users; production keeps argon2-cffi's recommended cost.
        if settings.env == "test":
            self._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        else:
            self._hasher = PasswordHasher()
        # Verified against when the email is unknown, so a miss costs as much time as a hit.
        self._dummy_hash = self._hasher.hash(uuid.uuid4().hex)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await anyio.to_thread.run_sync(check)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    kind: str
    expires_at: int


class TokenSigner:
    # Verified tokens are remembered (bounded) so a client's repeated requests skip PyJWT's
    # parsing and key preparation; a token's validity cannot change except by expiry, which is
    # still checked on every use.
    _CACHE_SIZE = 20_000

    def __init__(self, settings: Settings) -> None:
        self._key = settings.secret_key
        self._verified: dict[tuple[str, str], TokenClaims] = {}
        self.access_ttl = settings.access_token_ttl_seconds
        self.stream_ttl = min(settings.stream_token_ttl_seconds, 120)  # contract: <= 120 s

    def issue(self, user_id: uuid.UUID, kind: str = ACCESS) -> tuple[str, int]:
        ttl = self.access_ttl if kind == ACCESS else self.stream_ttl
        now = int(time.time())
        payload = {"sub": str(user_id), "typ": kind, "iat": now, "exp": now + ttl}
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM), ttl

    def verify(self, token: str, kind: str = ACCESS) -> TokenClaims:
        cached = self._verified.get((token, kind))
        if cached is not None:
            if cached.expires_at > time.time():
                return cached
            del self._verified[(token, kind)]
        claims = self._decode(token, kind)
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.clear()
        self._verified[(token, kind)] = claims
        return claims

    def _decode(self, token: str, kind: str) -> TokenClaims:
        try:
            payload = jwt.decode(token, self._key, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "typ"]})
            if payload["typ"] != kind:
                raise NotAuthenticated("Wrong token type.")
            return TokenClaims(uuid.UUID(payload["sub"]), kind, int(payload["exp"]))
        except jwt.ExpiredSignatureError:
            raise NotAuthenticated("Token expired.") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise NotAuthenticated("Invalid token.") from None
