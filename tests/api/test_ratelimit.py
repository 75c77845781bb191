"""The Redis limiters on a controllable clock (no waiting for a window): exact limits, windows
that slide, exact Retry-After, all-or-nothing attempts across several keys, forgiveness, slots
that expire unless refreshed, single-use claims, and a 503 (never a pass) when Redis is away."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.core.errors import DependencyUnavailable, RateLimited
from app.core.ratelimit import AttemptLimiter, SlidingWindowLimiter
from tests.support.env import TEST_REDIS_URL

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis(clean_state):
    client = aioredis.Redis.from_url(TEST_REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def gone() -> aioredis.Redis:
    # nothing listens on port 9 (discard): every call fails to connect at once (no retries)
    return aioredis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


async def _hit(limiter: SlidingWindowLimiter, subject: str = "s", name: str = "n") -> int | None:
    """None when allowed, else the Retry-After seconds."""
    try:
        await limiter.hit(name, subject, limit=3, window_seconds=10, detail="slow down")
    except RateLimited as refused:
        return refused.retry_after
    return None


async def test_sliding_window_allows_the_limit_then_tells_exactly_when(redis, clock):
    limiter = SlidingWindowLimiter(redis, clock=clock)
    t0 = clock.now
    for i in range(3):
        clock.now = t0 + i
        assert await _hit(limiter) is None
    clock.now = t0 + 3.2
    assert await _hit(limiter) == 7  # the oldest hit (t0) leaves the window at t0 + 10: 6.8 s, rounded up
    clock.now = t0 + 9.995  # 5 ms before the oldest hit leaves the window: still refused
    assert await _hit(limiter) == 1
    clock.now = t0 + 10.001  # the first hit has left the window; refusals were not counted
    assert await _hit(limiter) is None
    assert await _hit(limiter) == 1  # t0 + 1 leaves at t0 + 11
    # other subjects and other limits keep their own counts
    assert await _hit(limiter, subject="other") is None
    assert await _hit(limiter, name="other") is None


async def test_sliding_window_is_a_503_when_redis_is_away(gone):
    with pytest.raises(DependencyUnavailable):
        await SlidingWindowLimiter(gone).hit("n", "s", limit=3, window_seconds=10, detail="x")


async def test_attempts_count_on_every_key_or_on_none(redis, clock):
    limiter = AttemptLimiter(redis, clock=clock)
    t0 = clock.now
    limits = {"pair": 2, "ip": 5}
    await limiter.acquire("login", limits, window_seconds=60, detail="x")
    clock.now = t0 + 1
    await limiter.acquire("login", limits, window_seconds=60, detail="x")
    clock.now = t0 + 2
    with pytest.raises(RateLimited) as refused:
        await limiter.acquire("login", limits, window_seconds=60, detail="too many")
    assert refused.value.retry_after == 58
    # the refusal added nothing to the key that still had room: exactly 3 more fit there
    for _ in range(3):
        await limiter.acquire("login", {"ip": 5}, window_seconds=60, detail="x")
    with pytest.raises(RateLimited):
        await limiter.acquire("login", {"ip": 5}, window_seconds=60, detail="x")
    clock.now = t0 + 59.95  # the oldest attempt (t0) is still inside the window
    with pytest.raises(RateLimited):
        await limiter.acquire("login", {"pair": 2}, window_seconds=60, detail="x")
    clock.now = t0 + 60.001
    await limiter.acquire("login", {"pair": 2}, window_seconds=60, detail="x")


async def test_a_forgiven_attempt_no_longer_counts_on_any_key(redis, clock):
    limiter = AttemptLimiter(redis, clock=clock)
    limits = {"a": 1, "b": 1}
    member = await limiter.acquire("login", limits, window_seconds=60, detail="x")
    await limiter.forgive("login", list(limits), member)
    await limiter.acquire("login", {"a": 1}, window_seconds=60, detail="x")
    await limiter.acquire("login", {"b": 1}, window_seconds=60, detail="x")
    with pytest.raises(RateLimited):
        await limiter.acquire("login", {"a": 1}, window_seconds=60, detail="x")


async def test_attempts_are_a_503_when_redis_is_away_and_forgiving_is_quiet(gone):
    limiter = AttemptLimiter(gone)
    with pytest.raises(DependencyUnavailable):
        await limiter.acquire("login", {"a": 1}, window_seconds=60, detail="x")
    await limiter.forgive("login", ["a"], "member")  # stays counted until the window passes
    with pytest.raises(DependencyUnavailable):
        await limiter.acquire_slot("streams", "u", "m", limit=1, ttl_seconds=60)
    with pytest.raises(DependencyUnavailable):
        await limiter.claim_once("stream-token", "t", ttl_seconds=60)
    await limiter.refresh_slot("streams", "u", "m", ttl_seconds=60)
    await limiter.release_slot("streams", "u", "m")


async def test_slots_are_bounded_released_and_expire_unless_refreshed(redis, clock):
    limiter = AttemptLimiter(redis, clock=clock)
    t0 = clock.now

    async def take(member: str) -> bool:
        return await limiter.acquire_slot("streams", "user", member, limit=2, ttl_seconds=60)

    assert await take("a")
    assert await take("b")
    assert not await take("c")
    await limiter.release_slot("streams", "user", "a")
    assert await take("c")
    assert not await take("d")
    clock.now = t0 + 50
    await limiter.refresh_slot("streams", "user", "b", ttl_seconds=60)  # b now lives to t0 + 110
    assert 50_000 < await redis.pttl(b"whago:slots:streams:user") <= 60_000  # the key lives as long
    await limiter.refresh_slot("streams", "user", "gone", ttl_seconds=60)  # never re-creates a slot
    clock.now = t0 + 60.001  # c (taken at t0) has expired, b has not
    assert await take("d")
    assert not await take("e")
    clock.now = t0 + 110.001  # b has expired; d (taken at t0 + 60) holds until t0 + 120
    assert await take("e")
    assert not await take("f")
    # another user's slots are their own
    assert await limiter.acquire_slot("streams", "someone else", "x", limit=1, ttl_seconds=60)


async def test_a_claim_succeeds_once(redis):
    limiter = AttemptLimiter(redis)
    assert await limiter.claim_once("stream-token", "t1", ttl_seconds=0.2)
    assert not await limiter.claim_once("stream-token", "t1", ttl_seconds=120)
    assert await limiter.claim_once("stream-token", "t2", ttl_seconds=120)
    assert 0 < await redis.ttl(b"whago:once:stream-token:t1") <= 1  # at least a second, never 0 (forever)
