"""Password hashing (argon2id, bounded, off the event loop) and signed, expiring, revocable bearer
tokens (JWT HS256 with issuer, audience, per-user version and id)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
import anyio.to_thread
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.core.errors import NotAuthenticated
from app.settings import Settings

T = TypeVar("T")

ACCESS = "access"
STREAM = "stream"
ISSUER = "whago"
# One audience per token type: an access token is refused on the stream route and vice versa.
AUDIENCES = {ACCESS: "whago-api", STREAM: "whago-event-stream"}
_ALGORITHM = "HS256"
# How long a token's revocation state (user version, disabled, logged out) is trusted before it is
# read again: the contract wants revocations effective in every process within 5 seconds.
REVOCATION_CACHE_SECONDS = 4.0

# argon2id at OWASP's second recommended minimum configuration (m=19 MiB, t=2, p=1): memory per
# hash is what an anonymous flood multiplies, so it stays at the minimum OWASP recommends.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1


class PasswordHashing:
    """argon2id with at most ``WHAGO_PASSWORD_HASH_CONCURRENCY`` operations running per process:
    a flood of logins waits for a slot instead of allocating 19 MiB per request."""

    def __init__(self, settings: Settings) -> None:
        # The test suite registers many users; a cheap hash keeps it fast (the cap still applies).
        if settings.env == "test":
            self._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        else:
            self._hasher = PasswordHasher(
                time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM
            )
        self.concurrency = max(1, settings.password_hash_concurrency)
        self._limiter: anyio.CapacityLimiter | None = None  # needs a running event loop
        # observed concurrency (statistics for tests and the benchmark, not a lock)
        self._stats_lock = threading.Lock()
        self.active = 0
        self.peak = 0
        # Verified against when the email is unknown, so a miss costs as much time as a hit.
        self._dummy_hash = self._hasher.hash(uuid.uuid4().hex)

    def _slot(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.concurrency)
        return self._limiter

    def _counted(self, work: Callable[[], T]) -> T:
        with self._stats_lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return work()
        finally:
            with self._stats_lock:
                self.active -= 1

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._counted, lambda: self._hasher.hash(password), limiter=self._slot())

    async def verify(self, password_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash or self._dummy_hash, password) and password_hash is not None
            except (VerificationError, InvalidHashError):
                return False

        return await anyio.to_thread.run_sync(self._counted, check, limiter=self._slot())


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    kind: str
    expires_at: int
    version: int
    token_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class TokenState:
    """What revocation depends on, as last read from the database."""

    version: int  # the user's current token version (-1: no such user)
    disabled: bool
    revoked: bool  # this very token was logged out


class TokenSigner:
    # Verified tokens are remembered (bounded) so a client's repeated requests skip PyJWT's
    # parsing and key preparation; the signature and claims of a token never change, expiry is
    # still checked on every use, and revocation is checked separately (``state``/``remember``).
    _CACHE_SIZE = 20_000

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # clocks are parameters so tests can move time instead of sleeping
        self._clock = clock
        self._monotonic = monotonic
        self._key = settings.secret_key
        self._verified: dict[tuple[str, str], TokenClaims] = {}
        self._states: dict[uuid.UUID, tuple[float, TokenState]] = {}
        self.access_ttl = settings.access_token_ttl_seconds
        self.stream_ttl = min(settings.stream_token_ttl_seconds, 120)  # contract: <= 120 s

    def issue(self, user_id: uuid.UUID, version: int, kind: str = ACCESS) -> tuple[str, int]:
        ttl = self.access_ttl if kind == ACCESS else self.stream_ttl
        now = int(self._clock())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCES[kind],
            "sub": str(user_id),
            "typ": kind,
            "ver": version,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ttl,
        }
        return jwt.encode(payload, self._key, algorithm=_ALGORITHM), ttl

    def verify(self, token: str, kind: str = ACCESS) -> TokenClaims:
        """Signature, issuer, audience, type and expiry; revocation is the caller's next step."""
        cached = self._verified.get((token, kind))
        if cached is not None:
            if cached.expires_at > self._clock():
                return cached
            del self._verified[(token, kind)]
        claims = self._decode(token, kind)
        if len(self._verified) >= self._CACHE_SIZE:
            self._verified.clear()
        self._verified[(token, kind)] = claims
        return claims

    def _decode(self, token: str, kind: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[_ALGORITHM],
                issuer=ISSUER,
                audience=AUDIENCES[kind],
                # time claims are checked below against the signer's clock (PyJWT reads the system's);
                # iat is informational (only this key signs, and it never future-dates a token)
                options={
                    "require": ["iss", "aud", "sub", "exp", "typ", "ver", "jti"],
                    "verify_exp": False,
                    "verify_iat": False,
                },
            )
            if payload["typ"] != kind:
                raise NotAuthenticated("Wrong token type.")
            claims = TokenClaims(
                uuid.UUID(payload["sub"]), kind, int(payload["exp"]), int(payload["ver"]), uuid.UUID(payload["jti"])
            )
        except jwt.InvalidAudienceError:
            raise NotAuthenticated("Wrong token audience (or type) for this route.") from None
        except jwt.InvalidIssuerError:
            raise NotAuthenticated("Token not issued by WHAGO.") from None
        except (jwt.InvalidTokenError, ValueError, TypeError):
            raise NotAuthenticated("Invalid token.") from None
        if claims.expires_at <= self._clock():  # PyJWT's rule: expired from the second of exp on
            raise NotAuthenticated("Token expired.")
        return claims

    # --- revocation cache (per token id, REVOCATION_CACHE_SECONDS) ------------------------------

    def cached_state(self, claims: TokenClaims) -> TokenState | None:
        entry = self._states.get(claims.token_id)
        if entry is None or entry[0] < self._monotonic():
            return None
        return entry[1]

    def remember(self, claims: TokenClaims, state: TokenState) -> None:
        if len(self._states) >= self._CACHE_SIZE:
            self._states.clear()
        self._states[claims.token_id] = (self._monotonic() + REVOCATION_CACHE_SECONDS, state)

    def forget_states(self) -> None:
        """After a revocation made by this process: effective here at once, not in 4 seconds."""
        self._states.clear()

    @staticmethod
    def check(claims: TokenClaims, state: TokenState) -> None:
        if state.version < 0:
            raise NotAuthenticated("Token revoked: unknown user.")
        if state.disabled:
            raise NotAuthenticated("Token revoked: the account is disabled.")
        if state.revoked:
            raise NotAuthenticated("Token revoked: logged out.")
        if claims.version != state.version:
            raise NotAuthenticated("Token revoked: sign in again.")
