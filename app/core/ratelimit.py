"""Sliding-window limits kept in Redis, so they hold across every API process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import redis.asyncio as aioredis

from app.core.errors import DependencyUnavailable, RateLimited
from app.core.redis import REDIS_UNAVAILABLE_ERRORS, key

# Atomically: drop entries older than the window, and add this hit only if under the limit.
# Returns {allowed (1/0), retry_after_ms}.
_ACQUIRE = """
local k, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
local count = redis.call('ZCARD', k)
if count < limit then
  redis.call('ZADD', k, now, member)
  redis.call('PEXPIRE', k, window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
return {0, math.max(1, tonumber(oldest[2]) + window - now)}
"""


class SlidingWindowLimiter:
    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock  # injectable: windows are tested without waiting for them
        self._acquire = redis.register_script(_ACQUIRE)

    async def hit(self, name: str, subject: str, *, limit: int, window_seconds: float, detail: str) -> None:
        """Count one attempt; raise RateLimited (with Retry-After) when over the limit."""
        now_ms = int(self._clock() * 1000)
        try:
            allowed, retry_ms = await self._acquire(
                keys=[key("ratelimit", name, subject)],
                args=[now_ms, int(window_seconds * 1000), limit, f"{now_ms}-{uuid.uuid4().hex[:8]}"],
            )
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Rate limiter unavailable (Redis).") from None
        if not allowed:
            raise RateLimited(detail, retry_after=-(-int(retry_ms) // 1000))


# Atomically, for every key: drop entries older than the window; if any key is at its limit,
# add nothing and return {0, retry_after_ms}; else add the member to every key and return {1, 0}.
# ARGV: now, window, member, then one limit per key.
_ACQUIRE_ALL = """
local now, window, member = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local wait = 0
for i, k in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  if redis.call('ZCARD', k) >= tonumber(ARGV[3 + i]) then
    local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now, 1)
  end
end
if wait > 0 then
  return {0, wait}
end
for _, k in ipairs(KEYS) do
  redis.call('ZADD', k, now, member)
  redis.call('PEXPIRE', k, window)
end
return {1, 0}
"""

# Slots (e.g. open event streams) that expire unless refreshed: ARGV now, ttl, limit, member.
_ACQUIRE_SLOT = """
local k, now, ttl, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
if redis.call('ZCARD', k) >= limit then
  return 0
end
redis.call('ZADD', k, now + ttl, member)
redis.call('PEXPIRE', k, ttl)
return 1
"""


class AttemptLimiter:
    """Attempts counted atomically *before* the work they guard, against several limits at once.

    ``acquire`` adds one attempt to every key or to none (429 when any key is full), so concurrent
    attempts can never exceed a limit; ``forgive`` takes back an attempt that turned out fine
    (a successful login does not count as a failure).
    """

    def __init__(self, redis: aioredis.Redis, clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._clock = clock
        self._acquire = redis.register_script(_ACQUIRE_ALL)
        self._slot = redis.register_script(_ACQUIRE_SLOT)

    async def acquire(self, name: str, limits: dict[str, int], *, window_seconds: float, detail: str) -> str:
        """``limits``: subject → limit. Returns the attempt's member (for ``forgive``)."""
        now_ms = int(self._clock() * 1000)
        member = f"{now_ms}-{uuid.uuid4().hex[:12]}"
        subjects = list(limits)
        try:
            allowed, retry_ms = await self._acquire(
                keys=[key("ratelimit", name, s) for s in subjects],
                args=[now_ms, int(window_seconds * 1000), member, *(limits[s] for s in subjects)],
            )
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Rate limiter unavailable (Redis).") from None
        if not allowed:
            raise RateLimited(detail, retry_after=-(-int(retry_ms) // 1000))
        return member

    async def forgive(self, name: str, subjects: list[str], member: str) -> None:
        try:
            pipe = self._redis.pipeline()
            for s in subjects:
                pipe.zrem(key("ratelimit", name, s), member)
            await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS:
            pass  # the attempt just stays counted until the window passes

    async def acquire_slot(self, name: str, subject: str, member: str, *, limit: int, ttl_seconds: float) -> bool:
        try:
            return bool(
                await self._slot(
                    keys=[key("slots", name, subject)],
                    args=[int(self._clock() * 1000), int(ttl_seconds * 1000), limit, member],
                )
            )
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Limiter unavailable (Redis).") from None

    async def refresh_slot(self, name: str, subject: str, member: str, *, ttl_seconds: float) -> None:
        k = key("slots", name, subject)
        try:
            pipe = self._redis.pipeline()
            pipe.zadd(k, {member: int((self._clock() + ttl_seconds) * 1000)}, xx=True)
            pipe.pexpire(k, int(ttl_seconds * 1000))
            await pipe.execute()
        except REDIS_UNAVAILABLE_ERRORS:
            pass  # the slot expires on its own if Redis stays away

    async def release_slot(self, name: str, subject: str, member: str) -> None:
        try:
            await self._redis.zrem(key("slots", name, subject), member)
        except REDIS_UNAVAILABLE_ERRORS:
            pass

    async def claim_once(self, name: str, subject: str, *, ttl_seconds: float) -> bool:
        """True the first time ``subject`` is claimed (within ttl): single-use tokens."""
        try:
            return bool(await self._redis.set(key("once", name, subject), b"1", nx=True, ex=max(1, int(ttl_seconds))))
        except REDIS_UNAVAILABLE_ERRORS:
            raise DependencyUnavailable("Limiter unavailable (Redis).") from None
