"""Bearer and stream tokens over a controllable clock (no sleeping): real expiry (also of a
verified-and-cached token), the token type in every check, the stream-token TTL cap, malformed
claims signed with the right key, the revocation cache's lifetime; passwords are case-sensitive."""

from __future__ import annotations

import asyncio
import time
import uuid

import jwt
import msgspec
import pytest

from app.core.errors import NotAuthenticated
from app.core.security import (
    ACCESS,
    REVOCATION_CACHE_SECONDS,
    STREAM,
    PasswordHashing,
    TokenSigner,
    TokenState,
)


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def clock() -> Clock:
    return Clock()


@pytest.fixture()
def signer(settings, clock) -> TokenSigner:
    return TokenSigner(settings, clock=clock, monotonic=clock)


def _refused(signer: TokenSigner, token: str, kind: str = ACCESS) -> str:
    with pytest.raises(NotAuthenticated) as refused:
        signer.verify(token, kind)
    return refused.value.detail


def test_a_token_expires_at_its_exp_even_once_verified_and_cached(signer, clock):
    user = uuid.uuid4()
    token, ttl = signer.issue(user, 0)
    assert ttl == signer.access_ttl
    claims = signer.verify(token)  # now remembered
    assert (claims.user_id, claims.kind) == (user, ACCESS)
    clock.now += ttl - 1
    assert signer.verify(token).user_id == user  # last second of validity, from the cache
    clock.now += 1
    assert "expired" in _refused(signer, token).lower()  # the cached entry is not trusted past exp
    assert "expired" in _refused(signer, token).lower()  # nor the next time


def test_a_token_verified_first_after_its_exp_is_refused(settings, clock, signer):
    token, ttl = signer.issue(uuid.uuid4(), 0)
    later = TokenSigner(settings, clock=Clock(clock.now + ttl))  # another process, nothing cached
    assert "expired" in _refused(later, token).lower()
    assert TokenSigner(settings, clock=Clock(clock.now + ttl - 1)).verify(token).kind == ACCESS


def test_the_exp_claim_is_issue_time_plus_the_announced_ttl(signer, clock):
    for kind in (ACCESS, STREAM):
        token, ttl = signer.issue(uuid.uuid4(), 3, kind)
        payload = jwt.decode(token, options={"verify_signature": False})
        assert payload["iat"] == int(clock.now)
        assert payload["exp"] == int(clock.now) + ttl
        assert payload["typ"] == kind
        assert payload["ver"] == 3


def test_the_cache_keeps_token_types_apart(signer):
    access, _ = signer.issue(uuid.uuid4(), 0, ACCESS)
    stream, _ = signer.issue(uuid.uuid4(), 0, STREAM)
    assert signer.verify(access, ACCESS).kind == ACCESS
    assert signer.verify(stream, STREAM).kind == STREAM
    # both are now cached: each is still refused as the other type
    _refused(signer, access, STREAM)
    _refused(signer, stream, ACCESS)
    # and refusing did not spoil the cache for the right type
    assert signer.verify(access, ACCESS).kind == ACCESS


def test_stream_tokens_never_live_longer_than_120_seconds(settings, clock):
    signer = TokenSigner(
        msgspec.structs.replace(settings, stream_token_ttl_seconds=600, access_token_ttl_seconds=900), clock=clock
    )
    token, ttl = signer.issue(uuid.uuid4(), 0, STREAM)
    assert ttl == 120
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == int(clock.now) + 120
    clock.now += 120
    _refused(signer, token, STREAM)
    # the cap is the stream token's only: access tokens keep their configured lifetime
    assert signer.issue(uuid.uuid4(), 0, ACCESS)[1] == 900
    short = TokenSigner(msgspec.structs.replace(settings, stream_token_ttl_seconds=30), clock=clock)
    assert short.issue(uuid.uuid4(), 0, STREAM)[1] == 30


def _signed(settings, clock, **claims) -> str:
    base = {
        "iss": "whago",
        "aud": "whago-api",
        "sub": str(uuid.uuid4()),
        "typ": "access",
        "ver": 0,
        "jti": str(uuid.uuid4()),
        "iat": int(clock.now),
        "exp": int(clock.now) + 60,
    }
    payload = {k: v for k, v in {**base, **claims}.items() if v is not ...}
    return jwt.encode(payload, settings.secret_key, algorithm="HS256")


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": ...},
        {"sub": "not-a-uuid"},
        {"sub": 42},
        {"exp": ...},
        {"exp": "soon"},
        {"exp": None},
        {"jti": "x"},
        {"ver": "seven"},
        {"typ": ...},
        {"typ": "stream"},
    ],
    ids=repr,
)
def test_right_key_but_missing_or_malformed_claims_are_refused(settings, clock, signer, claims):
    assert signer.verify(_signed(settings, clock)).kind == ACCESS  # the same token, well formed, passes
    _refused(signer, _signed(settings, clock, **claims))


def test_revocation_state_is_trusted_for_the_cache_window_only(signer, clock):
    token, _ = signer.issue(uuid.uuid4(), 0)
    claims = signer.verify(token)
    assert signer.cached_state(claims) is None
    state = TokenState(version=0, disabled=False, revoked=False)
    signer.remember(claims, state)
    assert signer.cached_state(claims) == state
    clock.now += REVOCATION_CACHE_SECONDS
    assert signer.cached_state(claims) == state
    clock.now += 0.5  # the contract: revocations effective within 5 seconds
    assert signer.cached_state(claims) is None
    signer.remember(claims, state)
    signer.forget_states()
    assert signer.cached_state(claims) is None


@pytest.mark.parametrize(
    ("state", "claims_version", "ok"),
    [
        (TokenState(version=0, disabled=False, revoked=False), 0, True),
        (TokenState(version=-1, disabled=False, revoked=False), -1, False),
        (TokenState(version=0, disabled=True, revoked=False), 0, False),
        (TokenState(version=0, disabled=False, revoked=True), 0, False),
        (TokenState(version=1, disabled=False, revoked=False), 0, False),
    ],
)
def test_revocation_check(signer, state, claims_version, ok):
    token, _ = signer.issue(uuid.uuid4(), claims_version)
    claims = signer.verify(token)
    if ok:
        signer.check(claims, state)
    else:
        with pytest.raises(NotAuthenticated):
            signer.check(claims, state)


@pytest.mark.anyio
async def test_passwords_are_case_sensitive(settings):
    passwords = PasswordHashing(settings)
    stored = await passwords.hash("Correct Horse")
    assert await passwords.verify(stored, "Correct Horse")
    assert not await passwords.verify(stored, "correct horse")
    assert not await passwords.verify(stored, "CORRECT HORSE")
    assert not await passwords.verify(None, "Correct Horse")  # unknown email: never a match


def test_issue_uses_the_injected_clock_not_the_system_one(settings):
    past = TokenSigner(settings, clock=Clock(1_000_000.0))
    token, ttl = past.issue(uuid.uuid4(), 0)
    assert jwt.decode(token, options={"verify_signature": False})["exp"] == 1_000_000 + ttl
    # the system clock says this token expired long ago
    assert ttl < time.time() - 1_000_000
    assert "expired" in _refused(TokenSigner(settings), token).lower()


def test_the_verified_and_state_caches_stay_bounded(signer, monkeypatch):
    """A flood of distinct valid tokens must not grow a process's memory without bound."""
    monkeypatch.setattr(TokenSigner, "_CACHE_SIZE", 4)
    tokens = [signer.issue(uuid.uuid4(), 1)[0] for _ in range(10)]
    for token in tokens:
        claims = signer.verify(token)
        signer.remember(claims, TokenState(version=1, disabled=False, revoked=False))
        assert len(signer._verified) <= 4
        assert len(signer._states) <= 4
    # still correct after the caches were emptied
    assert signer.verify(tokens[0]).version == 1


@pytest.mark.anyio
@pytest.mark.parametrize(("configured", "expected"), [(1, 1), (0, 1), (3, 3)])
async def test_hashing_concurrency_is_the_setting_and_at_least_one(settings, configured, expected):
    hashing = PasswordHashing(msgspec.structs.replace(settings, password_hash_concurrency=configured))
    assert hashing.concurrency == expected
    real = hashing._hasher

    class SlowHasher:
        def verify(self, hash_: str, password: str) -> bool:
            time.sleep(0.05)  # long enough for more than the cap to be in flight if it let them
            return real.verify(hash_, password)

    hashing._hasher = SlowHasher()  # type: ignore[assignment]
    await asyncio.gather(*(hashing.verify(None, "guess") for _ in range(4 * expected + 2)))
    assert hashing.peak == expected
